#pragma once
// weftrun --elastic: after a generation of the job failed, whether to start another and at what
// size. Pure: a function of what failed, unit-tested without processes.
//   - at most --max-restarts restarts in all;
//   - a size below the job's first that the ranks refused (the first to exit did so with status 2,
//     bad usage: weft-train's global batch or layout does not fit that many ranks) is skipped: the
//     next generation is one rank smaller;
//   - the same rank failing first in two generations in a row at one size (a rank that keeps
//     failing: a bad device, a node-local fault) makes the next generation one rank smaller;
//   - otherwise the job restarts at the same size: a rank that died or hung once gets a fresh one;
//   - across nodes (weftrun --nnodes), the next generation is node 0's ranks alone: node 0's
//     weftrun serves the coordinator and restarts; the others leave the job when theirs ends
//     (their ranks were lost, or lost a peer), and none rejoins;
//   - never below --min-ranks, and never when the first size's ranks refused their own flags.
#include <optional>
#include <string>
#include <variant>

namespace weft::launcher {

struct FailedGeneration {
  int size = 0;
  int culprit = -1;           // the rank that failed first (the coordinator's lost rank), -1: none
  bool refused_size = false;  // the first rank to fail exited with status 2 (bad usage)
  int node_zero_ranks = 0;    // across nodes: the ranks of node 0, which alone go on; 0: one node
};

struct Restart {
  int size = 0;
  std::string why_size;  // why it differs from the failed generation's ("" when the same)
};

class ElasticPolicy {
 public:
  ElasticPolicy(int first_size, int min_ranks, int max_restarts);
  // The next generation, or why there is none.
  std::variant<Restart, std::string> after(const FailedGeneration& failed);
  int restarts() const { return restarts_; }

 private:
  int first_size_, min_ranks_, max_restarts_;
  int restarts_ = 0;
  std::optional<FailedGeneration> previous_;
};

}  // namespace weft::launcher
