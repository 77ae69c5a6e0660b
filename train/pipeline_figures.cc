#include "train/pipeline_figures.h"

#include <algorithm>
#include <bit>

#include "parallel/schedule_sim.h"
#include "runtime/thread_clock.h"
#include "runtime/world.h"

namespace weft::train {
namespace {

constexpr size_t kFigureWords = 8;  // seconds, exchanges, descheduled, the five costs

size_t computes_of(const std::vector<parallel::Action>& actions) {
  return static_cast<size_t>(std::count_if(
      actions.begin(), actions.end(), [](const auto& a) { return parallel::is_compute(a.kind); }));
}

}  // namespace

StageStep stage_step(const parallel::PipelineTimes& times, bool cpu_costs) {
  return StageStep{times.seconds, times.exchange_seconds, times.descheduled_seconds,
                   times.costs(cpu_costs), times.durations};
}

size_t words_per_rank(const parallel::Schedule& schedule) {
  size_t most = 0;
  for (const auto& actions : schedule) most = std::max(most, computes_of(actions));
  return kFigureWords + most;
}

std::vector<uint64_t> to_words(const StageStep& s, const parallel::Schedule& schedule) {
  const parallel::ActionCosts& c = s.costs;
  std::vector<uint64_t> w;
  for (double v : {s.seconds, s.exchange_seconds, s.descheduled_seconds, c.forward, c.backward,
                   c.backward_input, c.backward_weight, c.transfer})
    w.push_back(std::bit_cast<uint64_t>(v));
  for (double d : s.durations) w.push_back(std::bit_cast<uint64_t>(d));
  w.resize(words_per_rank(schedule), std::bit_cast<uint64_t>(0.0));
  return w;
}

std::vector<StageStep> pipeline_steps(const std::vector<uint64_t>& words,
                                      const parallel::Schedule& schedule,
                                      const parallel::MeshShape& shape,
                                      parallel::MeshCoords coords) {
  const size_t stride = words_per_rank(schedule);
  std::vector<StageStep> out;
  for (coords.pp = 0; coords.pp < shape.pp; coords.pp++) {
    const uint64_t* w =
        words.data() + static_cast<size_t>(parallel::mesh_rank(shape, coords)) * stride;
    auto d = [&](size_t i) { return std::bit_cast<double>(w[i]); };
    StageStep s{d(0), d(1), d(2), parallel::ActionCosts{d(3), d(4), d(5), d(6), d(7)}, {}};
    const size_t n = computes_of(schedule[static_cast<size_t>(coords.pp)]);
    for (size_t i = 0; i < n; i++) s.durations.push_back(d(kFigureWords + i));
    out.push_back(std::move(s));
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
  double longest = 0, waited = 0, descheduled = 0;
  parallel::SimMachine machine, replay;
  machine.cores = cores;
  for (const StageStep& s : stages) longest = std::max(longest, s.seconds);
  for (const StageStep& s : stages) {
    // A rank that finished before the longest one idles until then, as in the simulator.
    waited += longest - s.seconds + s.exchange_seconds - s.descheduled_seconds;
    descheduled += s.descheduled_seconds;
    machine.costs.push_back(s.costs);
    replay.durations.push_back(s.durations);
  }
  const double total = longest * static_cast<double>(stages.size());
  if (total > 0) {
    f.idle = std::max(0.0, waited / total);
    f.descheduled = descheduled / total;
  }
  f.idle_sim = parallel::simulate_schedule(schedule, machine).idle_fraction;
  f.idle_replay = parallel::simulate_schedule(schedule, replay).idle_fraction;
  return f;
}

void record_pipeline(StepStats& s, const PipelineFigures& f) {
  s.pipeline_idle = f.idle;
  s.pipeline_idle_sim = f.idle_sim;
  s.pipeline_idle_replay = f.idle_replay;
  s.pipeline_descheduled = f.descheduled;
}

}  // namespace weft::train
