#pragma once
// RankProcess: one rank, started with fork/exec, its stdout and stderr captured through pipes.
// Each rank leads a process group of its own, and weftrun owns that group: signals go to the
// whole group, so what the rank started (a wrapper script's child, data-loader workers) gets
// them too, and whatever the rank leaves running in its group when it exits is killed as it is
// reaped. The rank itself dies with weftrun (PR_SET_PDEATHSIG), so a killed launcher never
// leaves ranks behind (a child that leaves the group, with setsid or setpgid, is its own).
// Move-only; the destructor kills and reaps a rank that is still running.
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "launcher/line_prefixer.h"
#include "runtime/unique_fd.h"

namespace weft::launcher {

struct RankLaunch {
  int rank = 0;
  std::string program_path;       // resolved and checked (program_path.h)
  std::vector<std::string> argv;  // argv[0] is the program as the user wrote it
  std::vector<std::string> env;   // the complete environment, "NAME=value"
  int stdin_fd = -1;              // becomes the rank's stdin; -1: /dev/null
  bool tag_output = true;
};

class RankProcess {
 public:
  enum class Stream { out = 0, err = 1 };

  // Forks and execs. Throws Error naming the rank when fork or exec fails: InvalidArgument
  // when the program cannot be run (bad usage), Unavailable when the machine is out of
  // processes or memory.
  static RankProcess start(const RankLaunch& launch);

  RankProcess(RankProcess&& other) noexcept;  // the moved-from object no longer owns the pid
  RankProcess& operator=(RankProcess&&) = delete;
  ~RankProcess();

  int rank() const { return rank_; }
  pid_t pid() const { return pid_; }
  bool running() const { return !wait_status_.has_value(); }
  // waitpid's status once reaped.
  std::optional<int> wait_status() const { return wait_status_; }

  // The read end of a stream's pipe, or -1 once it reached EOF.
  int fd(Stream s) const { return pipes_[static_cast<int>(s)].get(); }
  // Reads what the pipe holds now (up to a fairness cap) and appends its complete lines,
  // prefixed, to `out`. At EOF closes the pipe and appends the unfinished last line too.
  // Returns the number of bytes read.
  size_t read_output(Stream s, std::string& out);
  // At the very end: whatever is left, including an unfinished last line.
  void flush_output(Stream s, std::string& out);

  // Sends a signal to the rank's process group if the rank has not been reaped (a no-op
  // afterwards: the id may be reused).
  void send_signal(int signo) const;
  // Non-blocking: when the rank has exited, SIGKILLs what it left in its process group and
  // reaps it; returns true when this call reaped the rank.
  bool try_reap();

 private:
  RankProcess(int rank, pid_t pid, UniqueFd out, UniqueFd err, bool tag_output);

  int rank_ = 0;
  pid_t pid_ = -1;
  std::optional<int> wait_status_;
  UniqueFd pipes_[2];
  LinePrefixer prefixers_[2];
};

}  // namespace weft::launcher
