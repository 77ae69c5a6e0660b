#include "train/pipeline_figures.h"

#include <algorithm>
#include <bit>

#include "parallel/schedule_sim.h"
#include "runtime/thread_clock.h"
#include "runtime/world.h"

namespace weft::train {
namespace {

constexpr size_t kFigureWords = 9;  // seconds, exchanges, descheduled, the five costs, the CPU

size_t computes_of(const std::vector<parallel::Action>& actions) {
  return static_cast<size_t>(std::count_if(
      actions.begin(), actions.end(), [](const auto& a) { return parallel::is_compute(a.kind); }));
}

// The CPU with at least kPlacedShare of the computes' CPU time, or -1; numbered apart on each
// node (CPU c of node n is n x 65536 + c), as ranks on two nodes never share one.
int placed_cpu(const std::vector<double>& cpu_seconds) {
  double total = 0;
  for (double t : cpu_seconds) total += t;
  const auto most = std::max_element(cpu_seconds.begin(), cpu_seconds.end());
  if (!(total > 0) || *most < kPlacedShare * total) return -1;
  return World::from_env().node_rank * 65536 + static_cast<int>(most - cpu_seconds.begin());
}

}  // namespace

StageStep stage_step(const parallel::PipelineTimes& times, bool cpu_costs) {
  return StageStep{times.seconds,
                   times.exchange_seconds,
                   times.descheduled_seconds,
                   times.costs(cpu_costs),
                   times.durations,
                   cpu_costs ? placed_cpu(times.cpu_seconds) : -1,
                   {}};
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
                   c.backward_input, c.backward_weight, c.transfer, static_cast<double>(s.cpu)})
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
  auto word = [&](int rank, size_t i) {
    return std::bit_cast<double>(words[static_cast<size_t>(rank) * stride + i]);
  };
  std::vector<StageStep> out;
  for (coords.pp = 0; coords.pp < shape.pp; coords.pp++) {
    const int rank = parallel::mesh_rank(shape, coords);
    auto d = [&](size_t i) { return word(rank, i); };
    StageStep s{d(0), d(1), d(2), parallel::ActionCosts{d(3), d(4), d(5), d(6), d(7)}, {},
                static_cast<int>(d(8)), {}};
    const size_t n = computes_of(schedule[static_cast<size_t>(coords.pp)]);
    for (size_t i = 0; i < n; i++) s.durations.push_back(d(kFigureWords + i));
    parallel::MeshCoords alike = coords;
    for (alike.dp = 0; alike.dp < shape.dp; alike.dp++)
      for (alike.tp = 0; alike.tp < shape.tp; alike.tp++)
        if (const int other = parallel::mesh_rank(shape, alike); other != rank)
          s.alike_cpus.push_back(static_cast<int>(word(other, 8)));
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
  f.per_cpu = !stages.empty();
  for (const StageStep& s : stages) {
    f.per_cpu = f.per_cpu && s.cpu >= 0 &&
                std::all_of(s.alike_cpus.begin(), s.alike_cpus.end(), [](int c) { return c >= 0; });
    machine.cpu.push_back(s.cpu);
    machine.alike_cpus.push_back(s.alike_cpus);
  }
  if (!f.per_cpu) {
    machine.cpu.clear();
    machine.alike_cpus.clear();
  }
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
  s.pipeline_sim_cores = f.per_cpu ? "per_cpu" : "shared";
}

}  // namespace weft::train
