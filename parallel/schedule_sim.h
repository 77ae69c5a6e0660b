#pragma once
// Runs a pipeline Schedule without processes: every rank walks its action list with blocking
// point-to-point semantics and unit costs, which is how the tests check that a schedule cannot
// deadlock and how the trainer prints the bubble it should expect.
//
// Semantics: a send is a rendezvous (it completes once the matching receive is posted, and not
// before), a receive completes once the matching send is posted, and a group of actions linked
// by `batched_with_next` is posted at once and completes when all its members have. The k-th
// send from rank a to rank b matches the k-th receive on b from a, whatever they carry (as the
// Communicator's untagged point-to-point does), so a pair that carries different tensors, or a
// send without its receive, is reported rather than simulated. p2p takes no time.
#include <string>
#include <vector>

#include "parallel/schedule.h"

namespace weft::parallel {

struct StuckRank {
  int rank = 0;
  int action_index = 0;  // the first action of the group it waits in
  Action action;
};

struct SimResult {
  bool completed = false;
  // Why not, when !completed: the first unmatched or mismatched p2p pair, or the deadlock
  // (every rank still waiting, at which action).
  std::string problem;
  std::vector<StuckRank> stuck;  // the deadlock's ranks; empty otherwise
  std::vector<double> busy;      // per rank: time spent computing
  double makespan = 0;           // when the last rank finishes
  double idle_fraction = 0;      // 1 - sum(busy) / (ranks x makespan): the bubble
};

SimResult simulate_schedule(const Schedule& schedule, const ActionCosts& costs = {});

}  // namespace weft::parallel
