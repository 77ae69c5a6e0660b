#pragma once
// What the elastic and exact-resume tests share: weft-train run by `sh -c SCRIPT` on every rank
// under weftrun (the script injects the fault: it sees WEFT_RANK, WEFT_WORLD_SIZE and
// WEFT_RESTART_COUNT, and runs weft-train as "$@"), and a JSON log read as (step, loss) records.
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "tests/integration/train_harness.h"

namespace weft::testing {

using SteadyClock = std::chrono::steady_clock;

inline double seconds_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Shell for a rank's script: in the background, waits until `log` holds `lines` records (one per
// step logged), then runs `action`; `$$` in it is the rank's pid once the script execs weft-train.
inline std::string after_logged(const std::string& log, int lines, const std::string& action,
                                const std::string& poll = "0.005") {
  return "(until [ -f " + log + " ] && [ \"$(wc -l < " + log + ")\" -ge " +
         std::to_string(lines) + " ]; do sleep " + poll + "; done; " + action + ") &";
}

class ElasticTrain : public Train {
 protected:
  // weftrun's arguments: `-n ranks`, `weftrun_flags`, then every rank runs `script` with
  // weft-train, `model` and `flags` as its arguments ("$@").
  Args job(int ranks, const Args& weftrun_flags, const std::string& script, const Args& model,
           const Args& flags) {
    Args args = {"-n", std::to_string(ranks)};
    args.insert(args.end(), weftrun_flags.begin(), weftrun_flags.end());
    args.insert(args.end(), {"--", "sh", "-c", script, "sh", WEFT_TRAIN_PATH});
    args.insert(args.end(), model.begin(), model.end());
    args.insert(args.end(), flags.begin(), flags.end());
    return args;
  }
  std::string path(const std::string& name) { return (dir_ / name).string(); }

  // Each step's loss as the log's last record of that step has it: a restarted job's log holds
  // the steps it ran again after those of the generation that failed.
  std::map<int, double> last_loss_of_each_step(const std::string& log) {
    std::vector<double> steps = values(log, "step"), loss = losses(log);
    std::map<int, double> out;
    for (size_t i = 0; i < steps.size() && i < loss.size(); ++i)
      out[static_cast<int>(steps[i])] = loss[i];
    return out;
  }
};

}  // namespace weft::testing
