#pragma once
// Test harness: runs the real weftrun binary as a child, in its own process group, capturing
// stdout and stderr. Every wait has a deadline; the destructor SIGKILLs weftrun's group, and
// the ranks die with weftrun, so a failing test never leaves weftrun or its ranks behind.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/text.h"  // contains(), for the tests that include this harness

namespace weft::testing {

struct WeftrunResult {
  int exit_code = -1;      // the shell-style code: exit status, or 128+signal
  bool timed_out = false;  // the harness had to kill weftrun
  std::string out, err;
  double seconds = 0;  // from start to exit
};

// A program other than weftrun, for ranks started without it (torchrun-style variables).
struct Program {
  std::string path;
};

class WeftrunProcess {
 public:
  // Starts `weftrun args...` with the test's environment plus `extra_env` ("NAME=value", which
  // wins over the test's), and `input` on its stdin; `ignored_signals` start ignored, as a
  // shell's `&` does it.
  explicit WeftrunProcess(const std::vector<std::string>& args, const std::string& input = "",
                          const std::vector<std::string>& extra_env = {},
                          const std::vector<int>& ignored_signals = {});
  // Starts `program args...` the same way.
  WeftrunProcess(const Program& program, const std::vector<std::string>& args,
                 const std::string& input = "", const std::vector<std::string>& extra_env = {},
                 const std::vector<int>& ignored_signals = {});
  ~WeftrunProcess();
  WeftrunProcess(const WeftrunProcess&) = delete;
  WeftrunProcess& operator=(const WeftrunProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Reads output until stdout holds `text` at least `count` times; false at the timeout.
  bool wait_for_stdout(const std::string& text, int count, std::chrono::milliseconds timeout);
  // The same on stderr.
  bool wait_for_stderr(const std::string& text, int count, std::chrono::milliseconds timeout);
  // Sends a signal to weftrun alone (not its process group).
  void send_signal(int signo) const;
  // Waits for weftrun to exit and its pipes to close; past `timeout` kills the group.
  WeftrunResult finish(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  const std::string& out() const { return result_.out; }
  const std::string& err() const { return result_.err; }

 private:
  void pump(int timeout_ms);
  bool wait_for(const std::string& stream, const std::string& text, int count,
                std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  bool reaped_ = false;
  int out_fd_ = -1, err_fd_ = -1;
  std::chrono::steady_clock::time_point started_;
  WeftrunResult result_;
};

// weftrun's arguments for `ranks` ranks (after `flags`), each running `script` under sh -c.
std::vector<std::string> shell(int ranks, const std::string& script,
                               const std::vector<std::string>& flags = {});

// Runs weftrun to the end.
WeftrunResult run_weftrun(const std::vector<std::string>& args, const std::string& input = "",
                          const std::vector<std::string>& extra_env = {});

// True while `pid` exists and is not a zombie.
bool process_alive(pid_t pid);
// Waits until none of `pids` is alive; false if some still are at the timeout.
bool wait_until_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout);

// Every live process whose environment holds WEFT_JOB_ID=`job_id`: what is left of a job.
std::vector<pid_t> processes_of_job(const std::string& job_id);
// Waits until no process of the job is left; false (after SIGKILLing them, so that a failing
// test leaves nothing behind) if some still are at the timeout.
bool wait_until_job_gone(const std::string& job_id, std::chrono::milliseconds timeout);

// Lines of `text` (without their '\n'), in order.
std::vector<std::string> lines_of(const std::string& text);
int count_of(const std::string& text, const std::string& needle);

}  // namespace weft::testing
