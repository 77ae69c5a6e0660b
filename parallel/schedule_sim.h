#pragma once
// Runs a pipeline Schedule without processes: every rank walks its action list with blocking
// point-to-point semantics, which is how the tests check that a schedule cannot deadlock, how
// the trainer prints the bubble it should expect (unit costs), and how it predicts the idle
// fraction a step should show on its machine (the costs it measured, its cores).
//
// Semantics: a send is a rendezvous (it completes once the matching receive is posted, and not
// before), a receive completes once the matching send is posted, and a group of actions linked
// by `batched_with_next` is posted at once and completes when all its members have, plus the
// group's copies (ActionCosts::transfer per message, on each end). The k-th send from rank a to
// rank b matches the k-th receive on b from a, whatever they carry (as the Communicator's
// untagged point-to-point does), so a pair that carries different tensors, or a send without
// its receive, is reported rather than simulated.
//
// Cores (processor sharing): a rank that computes or copies is runnable, one that waits in p2p
// is not; with k runnable ranks on c cores each runs at min(1, c / k) of its own speed, which is
// how the kernel shares oversubscribed cores among busy processes. A compute then takes longer
// than its cost while its neighbours compute too, and its cost while they wait.
//
// Placed (per-CPU sharing): where the kernel says which CPU each compute ran on, the ranks on a
// CPU share that CPU alone: k runnable on it run at 1/k each, whatever the other CPUs do. A rank
// whose CPU-mate waits then runs at full speed while another pair runs at half, which the
// global model averages away (4 ranks on 2 cores: it gives every rank 1/2 whenever all 4
// compute, or 2/3 when 3 do). A rank's copies run on the CPU of its last compute (its first,
// before any).
#include <string>
#include <vector>

#include "parallel/schedule.h"

namespace weft::parallel {

struct StuckRank {
  int rank = 0;
  int action_index = 0;  // the first action of the group it waits in
  Action action;
};

// What the ranks run on.
struct SimMachine {
  // Each rank's costs (costs[r] for rank r), or one entry that every rank has; empty: the
  // default (unit) costs.
  std::vector<ActionCosts> costs;
  // Cores the ranks share, possibly fractional (a pipeline rank that stands for several
  // processes has c / processes of them); 0: a core for every rank.
  double cores = 0;
  // Per-CPU sharing in place of `cores` (empty: `cores`): cpus[r][i] is the CPU rank r's i-th
  // compute ran on, any integer that names it.
  std::vector<std::vector<int>> cpus;
  // With `cpus`: per rank, the CPUs of other processes that run as it does (a pipeline stands
  // for dp x tp alike ones, in step: the same stage of another pipeline computes its i-th
  // compute when this one does), each process's as in `cpus`; empty: none.
  std::vector<std::vector<std::vector<int>>> alike_cpus;
  // A replay: each rank's computes' own durations, in the order of its list, in place of
  // `costs` (empty: none). Durations measured on the wall clock already hold every slowdown the
  // machine caused, so a replay runs with a core each (`cores` is not used): its idle is what
  // an executor with free p2p would have given with the very same computes.
  std::vector<std::vector<double>> durations;
};

struct SimResult {
  bool completed = false;
  // Why not, when !completed: the first unmatched or mismatched p2p pair, or the deadlock
  // (every rank still waiting, at which action).
  std::string problem;
  std::vector<StuckRank> stuck;  // the deadlock's ranks; empty otherwise
  std::vector<double> busy;      // per rank: time spent computing (at whatever speed)
  double makespan = 0;           // when the last rank finishes
  // 1 - sum(busy) / (ranks x makespan): the bubble, with the p2p copies counted as idle (as
  // PipelineTimes counts them).
  double idle_fraction = 0;
};

SimResult simulate_schedule(const Schedule& schedule, const ActionCosts& costs = {});
// Throws InvalidArgument when machine.costs has neither one entry nor one per rank, a replay
// has not one duration per compute of each rank, a cost, duration or the cores are negative,
// or `cpus` or `alike_cpus` is neither empty nor a CPU for each compute of each rank.
SimResult simulate_schedule(const Schedule& schedule, const SimMachine& machine);

}  // namespace weft::parallel
