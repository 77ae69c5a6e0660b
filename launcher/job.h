#pragma once
// Job: one local weftrun job from start to exit code. Starts the rendezvous store and N ranks
// (each leading a process group of its own, which weftrun signals as a whole), relays their
// output line by line, watches them, and applies the failure policy:
//   - all ranks exit 0                -> exit 0, nothing extra printed;
//   - a rank fails (code or signal)   -> say so, remove its files in /dev/shm, tell the others
//     through the store's abort channel (ranks still setting up fail at once, naming it), give
//     them `grace` seconds to exit on their own, then SIGTERM, then SIGKILL 2 s later; exit
//     with the first failure's code as job_exit_code (exit_status.h) maps it;
//   - weftrun gets SIGINT/SIGTERM/SIGHUP -> pass it on, wait (bounded), SIGKILL what is left;
//     exit 128+signal. A second signal kills at once;
//   - weftrun gets SIGTSTP (Ctrl-Z) -> pass it on and stop; SIGCONT is passed on too.
//   - with --elastic, a failed generation (ended as above) is followed by another: the
//     coordinator begins a new generation, and the ranks start again, at the same size or
//     smaller (elastic_policy.h), each restart printed with its reason; across nodes only node
//     0's weftrun (serving the coordinator) restarts, with its own ranks alone, and the others
//     leave the job;
//   - across nodes, a coordinator served elsewhere that stops answering for the heartbeat
//     timeout (coordinator_watch.h) -> say so, SIGTERM the ranks, SIGKILL 2 s later; exit 1;
//   - ranks that all exit with kPreemptedExitStatus (runtime/preemption.h: they saved their work
//     after SIGTERM/SIGUSR1) end the job with that status, never restarted.
// Shared-memory files of the job are removed however it ends (and after every generation), and
// those of jobs whose owners are gone are swept when it starts.
#include <string>

#include "launcher/launch_options.h"

namespace weft::launcher {

class Job {
 public:
  // `program_path` is options.command[0] resolved (program_path.h).
  Job(LaunchOptions options, std::string program_path);
  // Runs the job to the end and returns weftrun's exit code. Throws Error only when a
  // generation could not start (store or a rank failed to launch; InvalidArgument when the
  // program cannot be run); started ranks are stopped first.
  int run();

 private:
  LaunchOptions options_;
  std::string program_path_;
};

}  // namespace weft::launcher
