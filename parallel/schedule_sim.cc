#include "parallel/schedule_sim.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "runtime/error.h"

namespace weft::parallel {
namespace {

struct Ref {
  int rank = -1;
  int index = -1;
};

bool is_send(ActionKind kind) {
  return kind == ActionKind::send_activation || kind == ActionKind::send_gradient;
}

std::string at(int rank, int index, const Action& a) {
  return "rank " + std::to_string(rank) + " action " + std::to_string(index) + " " + to_string(a);
}

// Whether the receive `recv` on rank `dst` takes what `send` on rank `src` sends: the same
// tensor kind and micro-batch, from the neighbouring global stage in the right direction.
bool carries_same(const Action& send, int src, const Action& recv, int dst, int ranks) {
  int from = send.chunk * ranks + src, to = recv.chunk * ranks + dst;
  if (send.micro_batch != recv.micro_batch) return false;
  if (send.kind == ActionKind::send_activation)
    return recv.kind == ActionKind::recv_activation && to == from + 1;
  return recv.kind == ActionKind::recv_gradient && to == from - 1;
}

// Pairs each p2p action with its counterpart (k-th send a->b with k-th receive on b from a),
// or says what is malformed.
std::string match_p2p(const Schedule& schedule, std::vector<std::vector<Ref>>& counterpart) {
  int ranks = static_cast<int>(schedule.size());
  std::map<std::pair<int, int>, std::pair<std::vector<int>, std::vector<int>>> channels;
  for (int r = 0; r < ranks; r++) {
    const auto& actions = schedule[r];
    counterpart[r].assign(actions.size(), Ref{});
    for (int i = 0; i < static_cast<int>(actions.size()); i++) {
      const Action& a = actions[i];
      if (is_compute(a.kind)) {
        if (a.batched_with_next) return at(r, i, a) + " is batched, but only p2p can be";
        continue;
      }
      if (a.batched_with_next && i + 1 == static_cast<int>(actions.size()))
        return at(r, i, a) + " is batched with a next action that does not exist";
      if (a.peer < 0 || a.peer >= ranks || a.peer == r)
        return at(r, i, a) + " names no other rank of " + std::to_string(ranks);
      if (is_send(a.kind))
        channels[{r, a.peer}].first.push_back(i);
      else
        channels[{a.peer, r}].second.push_back(i);
    }
  }
  for (const auto& [pair, lists] : channels) {
    auto [src, dst] = pair;
    const auto& [sends, recvs] = lists;
    for (size_t k = 0; k < std::max(sends.size(), recvs.size()); k++) {
      if (k >= recvs.size())
        return at(src, sends[k], schedule[src][sends[k]]) + " has no matching receive on rank " +
               std::to_string(dst);
      if (k >= sends.size())
        return at(dst, recvs[k], schedule[dst][recvs[k]]) + " has no matching send on rank " +
               std::to_string(src);
      const Action& s = schedule[src][sends[k]];
      const Action& r = schedule[dst][recvs[k]];
      if (!carries_same(s, src, r, dst, ranks))
        return at(src, sends[k], s) + " is received in order by " + at(dst, recvs[k], r) +
               ", which expects another tensor";
      counterpart[src][sends[k]] = Ref{dst, recvs[k]};
      counterpart[dst][recvs[k]] = Ref{src, sends[k]};
    }
  }
  return "";
}

// One rank's progress through its list.
enum class RankState { running, waiting, done };
struct RankProgress {
  size_t pos = 0;  // first action not finished
  size_t end = 0;  // past the running compute, or past the group it waits in or copies
  RankState state = RankState::running;
  bool computing = false;  // running a compute (busy), not a group's copies
  double left = 0;         // work left in what it runs, at full speed
};

void check_machine(const SimMachine& machine, const Schedule& schedule) {
  const int ranks = static_cast<int>(schedule.size());
  if (!machine.durations.empty()) {
    if (static_cast<int>(machine.durations.size()) != ranks)
      throw Error(ErrorCode::InvalidArgument,
                  "schedule simulator: a replay of " + std::to_string(machine.durations.size()) +
                      " ranks for a schedule of " + std::to_string(ranks));
    for (int r = 0; r < ranks; r++) {
      size_t computes = 0;
      for (const Action& a : schedule[r]) computes += is_compute(a.kind);
      if (machine.durations[r].size() != computes)
        throw Error(ErrorCode::InvalidArgument,
                    "schedule simulator: rank " + std::to_string(r) + "'s replay has " +
                        std::to_string(machine.durations[r].size()) + " durations for " +
                        std::to_string(computes) + " computes");
      for (double d : machine.durations[r])
        if (!(d >= 0))
          throw Error(ErrorCode::InvalidArgument,
                      "schedule simulator: a replayed duration is negative or not a number");
    }
  }
  if (machine.costs.size() > 1 && static_cast<int>(machine.costs.size()) != ranks)
    throw Error(ErrorCode::InvalidArgument,
                "schedule simulator: " + std::to_string(machine.costs.size()) +
                    " ranks' costs for a schedule of " + std::to_string(ranks) +
                    " ranks: give one entry per rank, or one for all");
  if (!machine.cpus.empty() || !machine.alike_cpus.empty()) {
    auto computes = [&](int r) {
      size_t n = 0;
      for (const Action& a : schedule[r]) n += is_compute(a.kind);
      return n;
    };
    bool fits =
        static_cast<int>(machine.cpus.size()) == ranks &&
        (machine.alike_cpus.empty() || static_cast<int>(machine.alike_cpus.size()) == ranks);
    for (int r = 0; fits && r < ranks; r++) {
      fits = machine.cpus[r].size() == computes(r);
      if (!machine.alike_cpus.empty())
        for (const auto& alike : machine.alike_cpus[r]) fits = fits && alike.size() == computes(r);
    }
    if (!fits)
      throw Error(ErrorCode::InvalidArgument,
                  "schedule simulator: a placement that does not give a CPU for each compute of "
                  "each of the " +
                      std::to_string(ranks) + " ranks (and of each alike process)");
  }
  if (!(machine.cores >= 0))
    throw Error(ErrorCode::InvalidArgument,
                "schedule simulator: cores must be >= 0 (0: a core "
                "per rank), got " +
                    std::to_string(machine.cores));
  for (const ActionCosts& c : machine.costs)
    for (double v : {c.forward, c.backward, c.backward_input, c.backward_weight, c.transfer})
      if (!(v >= 0))
        throw Error(ErrorCode::InvalidArgument,
                    "schedule simulator: a cost is negative or not a number (" + std::to_string(v) +
                        "); costs are durations");
}

}  // namespace

SimResult simulate_schedule(const Schedule& schedule, const ActionCosts& costs) {
  SimMachine machine;
  machine.costs = {costs};
  return simulate_schedule(schedule, machine);
}

SimResult simulate_schedule(const Schedule& schedule, const SimMachine& machine) {
  int ranks = static_cast<int>(schedule.size());
  check_machine(machine, schedule);
  SimResult result;
  result.busy.assign(ranks, 0);
  std::vector<std::vector<Ref>> counterpart(ranks);
  result.problem = match_p2p(schedule, counterpart);
  if (!result.problem.empty()) return result;
  const ActionCosts unit;
  auto costs = [&](int r) -> const ActionCosts& {
    if (machine.costs.empty()) return unit;
    return machine.costs[machine.costs.size() == 1 ? 0 : r];
  };

  // posted[r][i]: whether rank r has posted p2p action i.
  std::vector<std::vector<bool>> posted(ranks);
  for (int r = 0; r < ranks; r++) posted[r].assign(schedule[r].size(), false);
  std::vector<RankProgress> rank(ranks);
  std::vector<size_t> computes_done(ranks, 0);  // computes started: a replay's next duration
  auto running_count = [&] {
    int running = 0;
    for (const RankProgress& k : rank) running += k.state == RankState::running;
    return running;
  };
  std::vector<double> finish(ranks, 0);
  double now = 0;
  // Whether every counterpart of the group rank r waits in has been posted.
  auto matched = [&](int r) {
    for (size_t i = rank[r].pos; i < rank[r].end; i++)
      if (!posted[counterpart[r][i].rank][counterpart[r][i].index]) return false;
    return true;
  };
  // Starts rank r's next action: a compute runs; a p2p group is posted whole and waits until
  // every counterpart is posted, then copies. Finished actions (no cost) are passed at once.
  auto start = [&](int r) {
    RankProgress& k = rank[r];
    const auto& actions = schedule[r];
    for (;;) {
      if (k.pos == actions.size()) {
        k.state = RankState::done;
        finish[r] = now;
        return;
      }
      const Action& a = actions[k.pos];
      if (is_compute(a.kind)) {
        k.end = k.pos + 1;
        k.computing = true;
        k.left = machine.durations.empty() ? cost_of(a.kind, costs(r))
                                           : machine.durations[r][computes_done[r]];
        computes_done[r]++;
      } else {
        k.end = k.pos;
        while (actions[k.end].batched_with_next) k.end++;
        k.end++;
        for (size_t i = k.pos; i < k.end; i++) posted[r][i] = true;
        k.computing = false;
        k.left = costs(r).transfer * static_cast<double>(k.end - k.pos);
        if (!matched(r)) {
          k.state = RankState::waiting;
          return;
        }
      }
      k.state = RankState::running;
      if (k.left > 0) return;
      k.pos = k.end;
    }
  };
  // A posting can match groups other ranks wait in; those copy (or finish) from now on, which
  // may post more. Until nothing changes.
  auto wake = [&] {
    for (bool woke = true; woke;) {
      woke = false;
      for (int r = 0; r < ranks; r++) {
        RankProgress& k = rank[r];
        if (k.state != RankState::waiting || !matched(r)) continue;
        woke = true;
        k.state = RankState::running;
        if (k.left > 0) continue;
        k.pos = k.end;
        start(r);
      }
    }
  };

  // Each running rank's speed: its share of the cores, or of the CPU its compute runs on (its
  // copies: its last compute's).
  std::vector<double> speed(ranks, 1.0);
  std::map<int, int> on_cpu;  // runnable processes per CPU
  auto cpu_now = [&](const std::vector<int>& cpus, int r) {
    if (cpus.empty()) return -1;  // a rank without computes: its copies on a CPU of their own
    return cpus[computes_done[r] == 0 ? 0 : computes_done[r] - 1];
  };
  auto speeds = [&] {
    if (!machine.durations.empty()) return;  // a replay: the durations hold the slowdowns
    if (machine.cpus.empty()) {
      if (machine.cores > 0) speed.assign(ranks, std::min(1.0, machine.cores / running_count()));
      return;
    }
    on_cpu.clear();
    for (int r = 0; r < ranks; r++) {
      if (rank[r].state != RankState::running) continue;
      on_cpu[cpu_now(machine.cpus[r], r)]++;
      if (!machine.alike_cpus.empty())
        for (const auto& alike : machine.alike_cpus[r]) on_cpu[cpu_now(alike, r)]++;
    }
    for (int r = 0; r < ranks; r++)
      if (rank[r].state == RankState::running) speed[r] = 1.0 / on_cpu[cpu_now(machine.cpus[r], r)];
  };

  for (int r = 0; r < ranks; r++) start(r);
  // Event by event: the running ranks share the cores until the first of them finishes what it
  // runs.
  for (;;) {
    wake();
    if (running_count() == 0) break;
    speeds();
    double step = std::numeric_limits<double>::infinity();
    for (int r = 0; r < ranks; r++)
      if (rank[r].state == RankState::running) step = std::min(step, rank[r].left / speed[r]);
    now += step;
    for (int r = 0; r < ranks; r++) {
      RankProgress& k = rank[r];
      if (k.state != RankState::running) continue;
      if (k.computing) result.busy[r] += step;
      // Those that end with this step end exactly (no rounding left over).
      if (k.left / speed[r] <= step * (1 + 1e-12)) {
        k.pos = k.end;
        start(r);
      } else {
        k.left -= step * speed[r];
      }
    }
  }

  for (int r = 0; r < ranks; r++) {
    if (rank[r].state == RankState::done) continue;
    StuckRank s{r, static_cast<int>(rank[r].pos), schedule[r][rank[r].pos]};
    result.problem += (result.stuck.empty() ? "the schedule deadlocks: " : "; ") +
                      at(r, s.action_index, s.action);
    result.stuck.push_back(s);
  }
  if (!result.stuck.empty()) return result;
  result.completed = true;
  result.makespan = ranks ? *std::max_element(finish.begin(), finish.end()) : 0;
  double total = 0;
  for (double b : result.busy) total += b;
  if (result.makespan > 0) result.idle_fraction = 1 - total / (ranks * result.makespan);
  return result;
}

}  // namespace weft::parallel
