#pragma once
// How a rank ended, in words and as weftrun's exit code. Pure functions of a waitpid status.
#include <string>

namespace weft::launcher {

// "SIGKILL", "SIGTERM", ... ("signal 77" for numbers without a name).
std::string signal_name(int signo);
// "exited with code 3" or "was killed by signal SIGKILL (9)".
std::string describe_wait_status(int wait_status);
bool succeeded(int wait_status);

// weftrun's exit codes mean one thing each (weftrun --help): 0 done, 2 bad usage, 1 a failure
// in the job, 128+N a rank killed by signal N. This maps the first failed rank's status onto
// them: killed by signal N -> 128+N; exited 128+N for a real signal N -> 128+N (a wrapper
// shell reporting its killed child); exited 2 -> 2 (the program's own usage error); any other
// code -> 1 (weftrun's summary still names the rank's own code).
int job_exit_code(int wait_status);

}  // namespace weft::launcher
