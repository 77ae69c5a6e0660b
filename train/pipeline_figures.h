#pragma once
// A step's pipeline figures for the progress lines: the idle fraction the pipeline measured,
// the one the schedule simulator predicts from the same step's costs on the cores the ranks
// share, and a replay of the step's own computes, so that the three can be compared layout by
// layout. All count the same way: the pipeline ranks' time waiting for a neighbour (or
// copying) over ranks x the longest rank's pipeline time, a rank that ends early idling to the
// end.
//
// Reading them: measured - replayed is what the executor itself lost (p2p waits its schedule
// does not have, copies); replayed - simulated is what the machine did that the simulator's
// mean costs and shared cores do not say (computes slower or faster from one to the next,
// other work on the cores).
#include <cstdint>
#include <vector>

#include "parallel/mesh.h"
#include "parallel/pipeline_executor.h"
#include "parallel/schedule.h"
#include "train/step_log.h"

namespace weft::train {

// What one pipeline rank's step contributes, as the other ranks receive it.
struct StageStep {
  double seconds = 0;
  double exchange_seconds = 0;
  double descheduled_seconds = 0;
  parallel::ActionCosts costs;    // measured: mean per compute kind, and the copy per message
  std::vector<double> durations;  // each compute's wall time, in order
  // The CPU each compute ran on, numbered apart on each node (empty: unknown: the kernels run
  // on several threads or a GPU, or more than 1 - kPlacedShare of the computes moved CPU while
  // they ran; those that did count on the CPU of the one before).
  std::vector<int> cpus;
  // The same for each process that runs as this one does (the same stage of the other dp x tp
  // ranks' pipelines), as pipeline_steps finds them; not sent.
  std::vector<std::vector<int>> alike_cpus;
};

// The share of a rank's computes that must stay on one CPU each for the simulator to take
// where they ran as their placement.
constexpr double kPlacedShare = 0.8;

// `cpu_costs`: the computes' CPU time is their cost (the kernels run on the rank's one thread),
// and the CPUs they ran on are known; otherwise their wall time (several threads per rank, each
// on a core of its own), and no CPUs.
StageStep stage_step(const parallel::PipelineTimes& times, bool cpu_costs);
// What each rank sends for `schedule` (the same for all, for an allgather): the figures, then
// its durations and its CPUs, each padded to the most computes a rank has.
size_t words_per_rank(const parallel::Schedule& schedule);
std::vector<uint64_t> to_words(const StageStep& s, const parallel::Schedule& schedule);
// From every rank's words (rank by rank), the steps of the pipeline `coords` is on, stage by
// stage, each with the CPUs of the other pipelines' ranks at its stage.
std::vector<StageStep> pipeline_steps(const std::vector<uint64_t>& words,
                                      const parallel::Schedule& schedule,
                                      const parallel::MeshShape& shape,
                                      parallel::MeshCoords coords);

// The cores a pipeline of `pp` ranks shares on this machine: the node's ranks share the cores
// this process may use, each wanting `threads` of them, and the dp x tp pipelines run alike,
// so each has pp ranks' share.
double pipeline_cores(int pp, int threads);

struct PipelineFigures {
  double idle = 0;         // measured
  double idle_sim = 0;     // the simulator's, at the measured costs on `cores` (-1: none)
  double idle_replay = 0;  // the simulator's, each compute taking its wall time (-1: none)
  double descheduled = 0;  // share of the time runnable without a core in exchanges (not idle)
  // Whether idle_sim shared each CPU among the ranks whose computes ran on it (every rank, here
  // and in the alike pipelines, has its CPUs) rather than `cores` among all of them.
  bool per_cpu = false;
};

// `stages[r]`: pipeline rank r's step; `cores`: what the pipeline's ranks share (a pipeline
// that stands for dp x tp of them on one node: the node's cores / (dp x tp)); 0: a core each.
// Where every rank and alike rank has its CPUs, `cores` is not used: each CPU is shared among
// the ranks computing on it (a GPU job, cores 0, never has CPUs).
PipelineFigures pipeline_figures(const parallel::Schedule& schedule,
                                 const std::vector<StageStep>& stages, double cores);
// Into the step's progress and log lines.
void record_pipeline(StepStats& s, const PipelineFigures& f);

}  // namespace weft::train
