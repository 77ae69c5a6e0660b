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

size_t most_computes(const parallel::Schedule& schedule) {
  size_t most = 0;
  for (const auto& actions : schedule) most = std::max(most, computes_of(actions));
  return most;
}

// Each compute's CPU, numbered apart on each node (CPU c of node n is n x 65536 + c: ranks on
// two nodes never share one), a compute that moved on the CPU of the one before (or after);
// none where fewer than kPlacedShare of them stayed on one CPU.
std::vector<int> placement(const std::vector<int>& cpus) {
  const auto stayed = std::count_if(cpus.begin(), cpus.end(), [](int c) { return c >= 0; });
  if (cpus.empty() || static_cast<double>(stayed) < kPlacedShare * static_cast<double>(cpus.size()))
    return {};
  const int node = World::from_env().node_rank * 65536;
  std::vector<int> out(cpus);
  int last = *std::find_if(cpus.begin(), cpus.end(), [](int c) { return c >= 0; });
  for (int& c : out) c = node + (last = c >= 0 ? c : last);
  return out;
}

}  // namespace

StageStep stage_step(const parallel::PipelineTimes& times, bool cpu_costs) {
  return StageStep{times.seconds,
                   times.exchange_seconds,
                   times.descheduled_seconds,
                   times.costs(cpu_costs),
                   times.durations,
                   cpu_costs ? placement(times.cpus) : std::vector<int>{},
                   {}};
}

size_t words_per_rank(const parallel::Schedule& schedule) {
  return kFigureWords + 2 * most_computes(schedule);
}

std::vector<uint64_t> to_words(const StageStep& s, const parallel::Schedule& schedule) {
  const parallel::ActionCosts& c = s.costs;
  std::vector<uint64_t> w;
  for (double v : {s.seconds, s.exchange_seconds, s.descheduled_seconds, c.forward, c.backward,
                   c.backward_input, c.backward_weight, c.transfer})
    w.push_back(std::bit_cast<uint64_t>(v));
  const size_t most = most_computes(schedule);
  for (double d : s.durations) w.push_back(std::bit_cast<uint64_t>(d));
  w.resize(kFigureWords + most, std::bit_cast<uint64_t>(0.0));
  for (int c : s.cpus) w.push_back(std::bit_cast<uint64_t>(static_cast<double>(c)));
  w.resize(kFigureWords + 2 * most, std::bit_cast<uint64_t>(-1.0));  // -1: no CPU
  return w;
}

std::vector<StageStep> pipeline_steps(const std::vector<uint64_t>& words,
                                      const parallel::Schedule& schedule,
                                      const parallel::MeshShape& shape,
                                      parallel::MeshCoords coords) {
  const size_t stride = words_per_rank(schedule), most = most_computes(schedule);
  auto word = [&](int rank, size_t i) {
    return std::bit_cast<double>(words[static_cast<size_t>(rank) * stride + i]);
  };
  std::vector<StageStep> out;
  for (coords.pp = 0; coords.pp < shape.pp; coords.pp++) {
    const int rank = parallel::mesh_rank(shape, coords);
    const size_t n = computes_of(schedule[static_cast<size_t>(coords.pp)]);
    // A rank's CPUs, or none where it sent none (-1).
    auto cpus = [&](int r) {
      std::vector<int> c;
      for (size_t i = 0; i < n; i++)
        c.push_back(static_cast<int>(word(r, kFigureWords + most + i)));
      return std::find(c.begin(), c.end(), -1) == c.end() ? c : std::vector<int>{};
    };
    auto d = [&](size_t i) { return word(rank, i); };
    StageStep s{d(0), d(1),       d(2), parallel::ActionCosts{d(3), d(4), d(5), d(6), d(7)},
                {},   cpus(rank), {}};
    for (size_t i = 0; i < n; i++) s.durations.push_back(d(kFigureWords + i));
    parallel::MeshCoords alike = coords;
    for (alike.dp = 0; alike.dp < shape.dp; alike.dp++)
      for (alike.tp = 0; alike.tp < shape.tp; alike.tp++)
        if (const int other = parallel::mesh_rank(shape, alike); other != rank)
          s.alike_cpus.push_back(cpus(other));
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
    f.per_cpu = f.per_cpu && !s.cpus.empty() &&
                std::none_of(s.alike_cpus.begin(), s.alike_cpus.end(),
                             [](const std::vector<int>& c) { return c.empty(); });
    machine.cpus.push_back(s.cpus);
    machine.alike_cpus.push_back(s.alike_cpus);
  }
  if (!f.per_cpu) {
    machine.cpus.clear();
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
  if (f.idle_sim >= 0) s.pipeline_sim_cores = f.per_cpu ? "per_cpu" : "shared";
}

}  // namespace weft::train
