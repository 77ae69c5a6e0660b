#include "parallel/schedule_sim.h"

#include <algorithm>
#include <map>
#include <utility>

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

}  // namespace

SimResult simulate_schedule(const Schedule& schedule, const ActionCosts& costs) {
  int ranks = static_cast<int>(schedule.size());
  SimResult result;
  result.busy.assign(ranks, 0);
  std::vector<std::vector<Ref>> counterpart(ranks);
  result.problem = match_p2p(schedule, counterpart);
  if (!result.problem.empty()) return result;

  // post[r][i]: when rank r posted p2p action i (negative: not yet).
  std::vector<std::vector<double>> post(ranks);
  for (int r = 0; r < ranks; r++) post[r].assign(schedule[r].size(), -1);
  std::vector<size_t> pos(ranks, 0);
  std::vector<double> clock(ranks, 0);
  auto group_end = [&](int r, size_t i) {
    while (schedule[r][i].batched_with_next) i++;
    return i + 1;
  };
  // Each pass moves every rank as far as it can; a pass that moves none is the end or a
  // deadlock. Times do not depend on the order ranks are visited in: a group completes at the
  // latest of its own and its counterparts' posting times.
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < ranks; r++) {
      const auto& actions = schedule[r];
      while (pos[r] < actions.size()) {
        const Action& a = actions[pos[r]];
        if (is_compute(a.kind)) {
          double c = cost_of(a.kind, costs);
          clock[r] += c;
          result.busy[r] += c;
          pos[r]++;
          moved = true;
          continue;
        }
        size_t end = group_end(r, pos[r]);
        bool ready = true;
        double done = clock[r];
        for (size_t i = pos[r]; i < end; i++) {
          if (post[r][i] < 0) post[r][i] = clock[r];
          Ref c = counterpart[r][i];
          double t = post[c.rank][c.index];
          if (t < 0) ready = false;
          done = std::max(done, t);
        }
        if (!ready) break;
        clock[r] = done;
        pos[r] = end;
        moved = true;
      }
    }
  }

  for (int r = 0; r < ranks; r++) {
    if (pos[r] == schedule[r].size()) continue;
    StuckRank s{r, static_cast<int>(pos[r]), schedule[r][pos[r]]};
    result.problem += (result.stuck.empty() ? "the schedule deadlocks: " : "; ") +
                      at(r, s.action_index, s.action);
    result.stuck.push_back(s);
  }
  if (!result.stuck.empty()) return result;
  result.completed = true;
  result.makespan = ranks ? *std::max_element(clock.begin(), clock.end()) : 0;
  double total = 0;
  for (double b : result.busy) total += b;
  if (result.makespan > 0) result.idle_fraction = 1 - total / (ranks * result.makespan);
  return result;
}

}  // namespace weft::parallel
