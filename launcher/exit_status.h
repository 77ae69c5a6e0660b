#pragma once
// How a rank ended, in words and as a shell-style exit code. Pure functions of a waitpid status.
#include <string>

namespace weft::launcher {

// "SIGKILL", "SIGTERM", ... ("signal 77" for numbers without a name).
std::string signal_name(int signo);
// "exited with code 3" or "was killed by signal SIGKILL (9)".
std::string describe_wait_status(int wait_status);
// The code a shell would report: the exit code, or 128 + the signal number.
int exit_code_of(int wait_status);
bool succeeded(int wait_status);

}  // namespace weft::launcher
