#include "launcher/exit_status.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstring>

namespace weft::launcher {

std::string signal_name(int signo) {
  const char* abbrev = ::sigabbrev_np(signo);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signo);
}

std::string describe_wait_status(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited with code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    int signo = WTERMSIG(wait_status);
    std::string text =
        "was killed by signal " + signal_name(signo) + " (" + std::to_string(signo) + ")";
    if (WCOREDUMP(wait_status)) text += ", core dumped";
    return text;
  }
  return "ended with wait status " + std::to_string(wait_status);
}

bool succeeded(int wait_status) { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }

int job_exit_code(int wait_status) {
  constexpr int kUsage = 2, kFailure = 1;
  if (succeeded(wait_status)) return 0;
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  if (!WIFEXITED(wait_status)) return kFailure;
  int code = WEXITSTATUS(wait_status);
  if (code == kUsage) return kUsage;
  if (code > 128 && code - 128 <= SIGRTMAX) return code;
  return kFailure;
}

}  // namespace weft::launcher
