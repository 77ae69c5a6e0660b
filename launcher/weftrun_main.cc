// weftrun: starts N local ranks of a program and relays their output (see job.h for the
// policy, launch_options.h for the flags). Exit codes: 0 done, 2 bad usage, 1 a failure in the
// job, 128+N a rank killed by signal N (weftrun --help; exit_status.h).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "launcher/job.h"
#include "launcher/launch_options.h"
#include "launcher/program_path.h"
#include "runtime/error.h"

namespace {

constexpr int kUsageExitCode = 2;
constexpr int kFailureExitCode = 1;

// weft::Error's text starts with the code's name ("InvalidArgument: ..."): useful in logs,
// noise in front of a command-line mistake.
int usage_error(const weft::Error& e) {
  std::fprintf(stderr, "weftrun: error: %s\nRun 'weftrun --help' for usage.\n",
               e.message().c_str());
  return kUsageExitCode;
}

// With fd 0, 1 or 2 closed, a pipe could be handed one of those numbers and a rank's dup2
// onto it would silently do nothing: hold them open on /dev/null.
void ensure_standard_fds_open() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) continue;
    int opened = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  ensure_standard_fds_open();
  std::vector<std::string> args(argv + 1, argv + argc);

  weft::launcher::LaunchOptions options;
  std::string program_path;
  try {
    options = weft::launcher::parse_launch_options(args);
    if (options.action == weft::launcher::LaunchOptions::Action::help) {
      std::fputs(weft::launcher::usage_text().c_str(), stdout);
      return 0;
    }
    if (options.action == weft::launcher::LaunchOptions::Action::help_env) {
      std::fputs(weft::launcher::env_help_text().c_str(), stdout);
      return 0;
    }
    const char* path = std::getenv("PATH");
    program_path = weft::launcher::resolve_program(options.command[0],
                                                   path ? path : "/usr/local/bin:/usr/bin:/bin");
  } catch (const weft::Error& e) {
    return usage_error(e);
  }

  // A reader of weftrun's output going away must not kill weftrun (and with it, through
  // PR_SET_PDEATHSIG, every rank); writes then fail with EPIPE instead. Ranks get SIGPIPE back.
  ::signal(SIGPIPE, SIG_IGN);
  try {
    return weft::launcher::Job(std::move(options), std::move(program_path)).run();
  } catch (const weft::Error& e) {
    if (e.code() == weft::ErrorCode::InvalidArgument) return usage_error(e);  // e.g. exec refused
    std::fprintf(stderr, "weftrun: %s\n", e.message().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weftrun: internal error: %s\n", e.what());
  }
  return kFailureExitCode;
}
