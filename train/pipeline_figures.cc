#include "train/pipeline_figures.h"

#include <algorithm>
#include <bit>

#include "parallel/schedule_sim.h"
#include "runtime/thread_clock.h"
#include "runtime/world.h"

namespace weft::train {

StageStep stage_step(const parallel::PipelineTimes& times, bool cpu_costs) {
  return StageStep{times.seconds, times.compute_seconds, times.descheduled_seconds,
                   times.costs(cpu_costs)};
}

std::vector<uint64_t> to_words(const StageStep& s) {
  const parallel::ActionCosts& c = s.costs;
  std::vector<uint64_t> w;
  for (double v : {s.seconds, s.compute_seconds, s.descheduled_seconds, c.forward, c.backward,
                   c.backward_input, c.backward_weight, c.transfer})
    w.push_back(std::bit_cast<uint64_t>(v));
  return w;
}

std::vector<StageStep> pipeline_steps(const std::vector<uint64_t>& words,
                                      const parallel::MeshShape& shape,
                                      parallel::MeshCoords coords) {
  std::vector<StageStep> out;
  for (coords.pp = 0; coords.pp < shape.pp; coords.pp++) {
    const uint64_t* w =
        words.data() + static_cast<size_t>(parallel::mesh_rank(shape, coords)) * kStageStepWords;
    auto d = [&](int i) { return std::bit_cast<double>(w[i]); };
    out.push_back(StageStep{d(0), d(1), d(2), parallel::ActionCosts{d(3), d(4), d(5), d(6), d(7)}});
  }
  return out;
}

double pipeline_cores(int pp, int threads) {
  const int node_ranks = std::max(1, World::from_env().local_size);
  return static_cast<double>(usable_cores()) * pp / (node_ranks * std::max(1, threads));
}

PipelineFigures pipeline_figures(const parallel::Schedule& schedule,
                                 const std::vector<StageStep>& stages, double cores) {
  PipelineFigures f;
  double longest = 0, compute = 0, descheduled = 0;
  parallel::SimMachine machine;
  machine.cores = cores;
  for (const StageStep& s : stages) {
    longest = std::max(longest, s.seconds);
    compute += s.compute_seconds;
    descheduled += s.descheduled_seconds;
    machine.costs.push_back(s.costs);
  }
  const double total = longest * static_cast<double>(stages.size());
  if (total > 0) {
    f.idle = std::max(0.0, 1 - (compute + descheduled) / total);
    f.descheduled = descheduled / total;
  }
  f.idle_sim = parallel::simulate_schedule(schedule, machine).idle_fraction;
  return f;
}

void record_pipeline(StepStats& s, const PipelineFigures& f) {
  s.pipeline_idle = f.idle;
  s.pipeline_idle_sim = f.idle_sim;
  s.pipeline_descheduled = f.descheduled;
}

}  // namespace weft::train
