#pragma once
// The multi-process fixture: starts real ranks with fork(), each with the environment weftrun
// would give it and a store served by the test process, runs a function in every rank, and
// collects exit status and output. A hard timeout kills every rank; all children are reaped
// before it returns, whatever happens.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace weft::testing {

struct RankResult {
  int rank = 0;
  pid_t pid = 0;
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  double seconds = 0;  // from start until this rank exited
  std::string output;  // its stdout and stderr, interleaved
};

struct ForkOptions {
  int ranks = 2;
  std::string backend = "tcp";
  std::chrono::milliseconds timeout{60'000};  // hard limit for the whole group
  std::map<std::string, std::string> env;     // extra environment (WEFT_TIMEOUT, ...)
  // Called in the parent once every rank has printed `ready_line` (if set): fault injection.
  std::string ready_line;
  std::function<void(const std::vector<pid_t>&)> on_ready;
};

struct ForkRun {
  std::vector<RankResult> ranks;
  std::string job_id;
  bool timed_out = false;
  std::string summary() const;  // every rank's status and output, for failure messages
};

// `body(rank)` runs in each child; its return value is the exit code. A weft::Error or other
// exception is printed and exits 1.
ForkRun fork_ranks(const ForkOptions& options, const std::function<int(int rank)>& body);

// Files in /dev/shm whose names start with "weft-<job_id>".
std::vector<std::string> leftover_shm_files(const std::string& job_id);

}  // namespace weft::testing
