#pragma once
// Job: one local weftrun job from start to exit code. Starts the rendezvous store and N ranks,
// relays their output line by line, watches them, and applies the failure policy:
//   - all ranks exit 0                -> exit 0, nothing extra printed;
//   - a rank fails (code or signal)   -> say so, give the others `grace` seconds to exit on
//     their own (they are likely reporting the lost peer), then SIGTERM, then SIGKILL 2 s
//     later; exit with the first failure's code (128+signal when killed);
//   - weftrun gets SIGINT/SIGTERM/SIGHUP -> pass it on, wait (bounded), SIGKILL what is left;
//     exit 128+signal. A second signal kills at once.
// Leftover shared-memory files of the job are removed however it ends.
#include <string>

#include "launcher/launch_options.h"

namespace weft::launcher {

class Job {
 public:
  // `program_path` is options.command[0] resolved (program_path.h).
  Job(LaunchOptions options, std::string program_path);
  // Runs the job to the end and returns weftrun's exit code. Throws Error only when the job
  // could not start (store or a rank failed to launch); started ranks are stopped first.
  int run();

 private:
  LaunchOptions options_;
  std::string program_path_;
};

}  // namespace weft::launcher
