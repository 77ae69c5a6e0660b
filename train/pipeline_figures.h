#pragma once
// A step's pipeline figures for the progress lines: the idle fraction the pipeline measured,
// and the one the schedule simulator predicts from the same step's costs on the cores the ranks
// share, so that the two can be compared layout by layout. Both count the same way: 1 - the
// pipeline ranks' compute time over (ranks x the longest rank's pipeline time).
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
  double compute_seconds = 0;
  double descheduled_seconds = 0;
  parallel::ActionCosts costs;  // measured: mean per compute kind, and the copy per message
};
constexpr size_t kStageStepWords = 8;

// `cpu_costs`: the computes' CPU time is their cost (the kernels run on the rank's one thread);
// otherwise their wall time (several threads per rank, each on a core of its own).
StageStep stage_step(const parallel::PipelineTimes& times, bool cpu_costs);
std::vector<uint64_t> to_words(const StageStep& s);  // kStageStepWords, for an allgather
// From every rank's words (rank by rank), the steps of the pipeline `coords` is on, stage by
// stage.
std::vector<StageStep> pipeline_steps(const std::vector<uint64_t>& words,
                                      const parallel::MeshShape& shape,
                                      parallel::MeshCoords coords);

// The cores a pipeline of `pp` ranks shares on this machine: the node's ranks share the cores
// this process may use, each wanting `threads` of them, and the dp x tp pipelines run alike,
// so each has pp ranks' share.
double pipeline_cores(int pp, int threads);

struct PipelineFigures {
  double idle = 0;         // measured
  double idle_sim = 0;     // the simulator's, at the measured costs on `cores`
  double descheduled = 0;  // share of the time runnable without a core in exchanges (not idle)
};

// `stages[r]`: pipeline rank r's step; `cores`: what the pipeline's ranks share (a pipeline
// that stands for dp x tp of them on one node: the node's cores / (dp x tp)); 0: a core each.
PipelineFigures pipeline_figures(const parallel::Schedule& schedule,
                                 const std::vector<StageStep>& stages, double cores);
// Into the step's progress and log lines.
void record_pipeline(StepStats& s, const PipelineFigures& f);

}  // namespace weft::train
