#include "parallel/schedule.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "runtime/error.h"

namespace weft::parallel {
namespace {

constexpr const char* kValidKinds = "gpipe, 1f1b, interleaved, zb";

[[noreturn]] void refuse(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

Action compute(ActionKind kind, int micro_batch, int chunk = 0) {
  return Action{kind, micro_batch, chunk, -1, false};
}

// Compute orders, one list per rank, before p2p is added.
using Orders = std::vector<std::vector<Action>>;

Orders gpipe_order(int stages, int micro_batches) {
  Orders orders(stages);
  for (auto& order : orders) {
    for (int mb = 0; mb < micro_batches; mb++) order.push_back(compute(ActionKind::forward, mb));
    for (int mb = 0; mb < micro_batches; mb++) order.push_back(compute(ActionKind::backward, mb));
  }
  return orders;
}

// PipeDream-flush: rank r runs ahead by stages - r - 1 forwards, which is what keeps the last
// rank busy from its first forward on; after that each backward frees the slot the next forward
// takes, so rank r never holds more than stages - r micro-batches.
Orders one_f_one_b_order(int stages, int micro_batches, ActionKind backward) {
  Orders orders(stages);
  for (int r = 0; r < stages; r++) {
    int warmup = std::min(stages - r - 1, micro_batches);
    auto& order = orders[r];
    for (int mb = 0; mb < warmup; mb++) order.push_back(compute(ActionKind::forward, mb));
    for (int i = 0; i < micro_batches - warmup; i++) {
      order.push_back(compute(ActionKind::forward, warmup + i));
      order.push_back(compute(backward, i));
    }
    for (int mb = micro_batches - warmup; mb < micro_batches; mb++)
      order.push_back(compute(backward, mb));
  }
  return orders;
}

// What a compute needs first: (kind, global stage, micro-batch) of the compute whose output it
// takes, or none (a forward of stage 0).
using Key = std::tuple<int, int, int>;
std::optional<Key> producer(const Action& a, int stage, int last) {
  auto key = [&](ActionKind k, int g) { return Key{static_cast<int>(k), g, a.micro_batch}; };
  switch (a.kind) {
    case ActionKind::forward:
      if (stage == 0) return std::nullopt;
      return key(ActionKind::forward, stage - 1);
    case ActionKind::backward:
    case ActionKind::backward_input:
      return stage == last ? key(ActionKind::forward, stage) : key(a.kind, stage + 1);
    case ActionKind::backward_weight: return key(ActionKind::backward_input, stage);
    default: return std::nullopt;
  }
}

Key key_of(const Action& a, int stage) {
  return Key{static_cast<int>(a.kind), stage, a.micro_batch};
}

// ZB-H1: 1F1B's forwards and input-gradient backwards (so the same micro-batches in flight), the
// weight gradients placed by timing them (F = B = W = 1, messages arriving when sent): a rank
// runs its next forward or backward_input as soon as its input is there, and a pending W
// whenever it would otherwise wait, so W fills the bubble; the rest go at the end. The previous
// stage waits only for backward_input, so gradients cross the pipeline at the cost of B alone.
Orders zero_bubble_order(int stages, int micro_batches) {
  Orders fb = one_f_one_b_order(stages, micro_batches, ActionKind::backward_input);
  Orders orders(stages);
  std::map<Key, int> end;  // when each compute finished
  std::vector<size_t> next(stages, 0);
  std::vector<int> next_w(stages, 0), b_done(stages, 0);
  int last = stages - 1;
  for (int t = 0;; t++) {
    bool all_done = true;
    std::vector<std::pair<Key, int>> finished;  // this step's, visible from the next step on
    for (int r = 0; r < stages; r++) {
      bool fb_left = next[r] < fb[r].size();
      if (!fb_left && next_w[r] == micro_batches) continue;
      all_done = false;
      std::optional<Action> run;
      if (fb_left) {
        const Action& a = fb[r][next[r]];
        std::optional<Key> dep = producer(a, r, last);
        if (!dep || end.count(*dep)) run = a;
      }
      if (run) {
        next[r]++;
        if (run->kind == ActionKind::backward_input) b_done[r]++;
      } else if (next_w[r] < b_done[r]) {
        run = compute(ActionKind::backward_weight, next_w[r]++);
      } else if (!fb_left) {
        run = compute(ActionKind::backward_weight, next_w[r]++);
      }
      if (!run) continue;
      orders[r].push_back(*run);
      finished.push_back({key_of(*run, r), t + 1});
    }
    if (all_done) break;
    for (auto& [key, at] : finished) end[key] = at;
  }
  return orders;
}

// Megatron's interleaved 1F1B. The k-th forward on every rank is the same (chunk, micro-batch):
// micro-batches go in groups of `stages`, each group through chunk 0, then chunk 1, ...; the
// k-th backward walks the chunks in reverse. Rank r runs (stages - r - 1) * 2 + (v - 1) * stages
// forwards ahead (all of them when micro-batches == stages), then 1F1B, then the cool-down.
Orders interleaved_order(int stages, int micro_batches, int chunks) {
  int total = micro_batches * chunks;
  auto chunk_of = [&](int k, bool forward) {
    int c = (k % (stages * chunks)) / stages;
    return forward ? c : chunks - 1 - c;
  };
  auto micro_batch_of = [&](int k) { return (k / (stages * chunks)) * stages + k % stages; };
  Orders orders(stages);
  for (int r = 0; r < stages; r++) {
    int warmup = micro_batches == stages ? total
                                         : std::min((stages - r - 1) * 2 + (chunks - 1) * stages,
                                                    total);
    auto& order = orders[r];
    auto forward = [&](int k) {
      order.push_back(compute(ActionKind::forward, micro_batch_of(k), chunk_of(k, true)));
    };
    auto backward = [&](int k) {
      order.push_back(compute(ActionKind::backward, micro_batch_of(k), chunk_of(k, false)));
    };
    for (int k = 0; k < warmup; k++) forward(k);
    for (int k = 0; k < total - warmup; k++) {
      forward(warmup + k);
      backward(k);
    }
    for (int k = total - warmup; k < total; k++) backward(k);
  }
  return orders;
}

// When each compute of `orders` starts, with the default costs, messages arriving the moment
// they are sent, and no compute starting before its entry in `not_before` (same shape as
// `orders`).
using Times = std::vector<std::vector<double>>;
Times timeline(const Orders& orders, int stages, int chunks, const Times& not_before) {
  ActionCosts costs;
  int last = stages * chunks - 1;
  std::map<Key, double> end;
  Times start(stages);
  std::vector<double> free(stages, 0);
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < stages; r++) {
      while (start[r].size() < orders[r].size()) {
        const Action& a = orders[r][start[r].size()];
        int g = a.chunk * stages + r;
        std::optional<Key> dep = producer(a, g, last);
        if (dep && !end.count(*dep)) break;
        double s = std::max({free[r], dep ? end[*dep] : 0.0, not_before[r][start[r].size()]});
        start[r].push_back(s);
        free[r] = s + cost_of(a.kind, costs);
        end[key_of(a, g)] = free[r];
        moved = true;
      }
    }
  }
  for (int r = 0; r < stages; r++)
    if (start[r].size() < orders[r].size())
      throw Error(ErrorCode::Internal, "pipeline schedule: rank " + std::to_string(r) +
                                           "'s compute order waits on itself");
  return start;
}

// The moments at which a rank can post p2p: slot i lies before compute i (slot n after the
// last) and spans from the end of compute i-1 to the start of compute i.
struct Slot {
  double from, to;
};
std::vector<Slot> slots_of(const std::vector<Action>& order, const std::vector<double>& start) {
  ActionCosts costs;
  std::vector<Slot> out;
  double free = 0;
  for (size_t i = 0; i < order.size(); i++) {
    out.push_back({free, start[i]});
    free = start[i] + cost_of(order[i].kind, costs);
  }
  out.push_back({free, std::numeric_limits<double>::infinity()});
  return out;
}

// A tensor that crosses between ranks: made by compute j of rank q, taken by compute i of rank r.
struct Message {
  int q;
  size_t j;
  int r;
  size_t i;
  std::tuple<bool, int, int> id;  // (gradient, micro-batch, sender's global stage)
};

std::vector<Message> messages_of(const Orders& orders, int stages, int chunks) {
  int last = stages * chunks - 1;
  std::map<Key, std::pair<int, size_t>> where;  // compute -> (rank, index in its order)
  for (int r = 0; r < stages; r++)
    for (size_t i = 0; i < orders[r].size(); i++)
      where[key_of(orders[r][i], orders[r][i].chunk * stages + r)] = {r, i};
  std::vector<Message> out;
  for (int r = 0; r < stages; r++) {
    for (size_t i = 0; i < orders[r].size(); i++) {
      const Action& a = orders[r][i];
      int g = a.chunk * stages + r;
      std::optional<Key> dep = producer(a, g, last);
      if (!dep || a.kind == ActionKind::backward_weight || std::get<1>(*dep) == g) continue;
      auto [q, j] = where.at(*dep);
      if (q == r) continue;  // one rank: the tensor stays local
      out.push_back(
          {q, j, r, i, {a.kind != ActionKind::forward, a.micro_batch, std::get<1>(*dep)}});
    }
  }
  return out;
}

// Where a message goes: the sender's slot, the receiver's slot, and the moment in both.
struct Meeting {
  size_t send_slot, recv_slot;
  double when;
};

// The earliest moment in [ready, needed] at which both ranks sit between computes, or none.
std::optional<Meeting> meet(const Message& m, const std::vector<std::vector<Slot>>& slots,
                            const Times& start) {
  const auto &sender = slots[m.q], &receiver = slots[m.r];
  double ready = sender[m.j + 1].from, needed = start[m.r][m.i];
  for (size_t sj = m.j + 1, ri = 0; sj < sender.size() && ri <= m.i;) {
    double lo = std::max({sender[sj].from, receiver[ri].from, ready});
    double hi = std::min({sender[sj].to, receiver[ri].to, needed});
    if (lo <= hi) return Meeting{sj, ri, lo};
    if (sender[sj].to < receiver[ri].to)
      sj++;
    else
      ri++;
  }
  return std::nullopt;
}

struct Placed {
  double when;
  std::tuple<bool, int, int> message;
  Action action;
};

// Adds the p2p the computes need (see the header). Each message goes at the earliest moment
// at which both its ranks sit between computes, so that both ends are posted together and
// neither waits. Where the timeline has no such moment (each rank computes while the other is
// free: interleaved's steady state, where F costs 1 and B 2), the receiver waits: its consuming
// compute is held back to the end of the sender's compute in progress, and the timeline is
// redone, so the ranks fall into step. (Letting the sender block instead, with the timeline left
// as it was, made every later round collide again and the waits add up: p = 2, m = 8, v = 2
// idled 0.158 against 1f1b's 0.111.) Conflicts go in the order of their consumers' start:
// holding a compute back moves only what starts after it, so earlier messages keep their
// moments and each round settles at least one message.
Schedule add_p2p(const Orders& orders, int stages, int chunks) {
  std::vector<Message> messages = messages_of(orders, stages, chunks);
  Times not_before(stages);
  for (int r = 0; r < stages; r++) not_before[r].assign(orders[r].size(), 0);
  Times start;
  std::vector<std::vector<Slot>> slots(stages);
  std::vector<Meeting> meetings;
  for (;;) {
    start = timeline(orders, stages, chunks, not_before);
    for (int r = 0; r < stages; r++) slots[r] = slots_of(orders[r], start[r]);
    meetings.clear();
    const Message* conflict = nullptr;
    for (const Message& m : messages) {
      std::optional<Meeting> at = meet(m, slots, start);
      if (at) {
        meetings.push_back(*at);
      } else if (!conflict || start[m.r][m.i] < start[conflict->r][conflict->i]) {
        conflict = &m;
      }
    }
    if (!conflict) break;
    // The sender computes from before the receiver is free until after `needed`: hold the
    // receiver's compute until that compute ends.
    const Message& m = *conflict;
    double from = std::max(slots[m.q][m.j + 1].from, slots[m.r][m.i].from);
    size_t sj = m.j + 1;
    while (slots[m.q][sj].to < from) sj++;
    not_before[m.r][m.i] = slots[m.q][sj].from;
  }
  std::vector<std::vector<std::vector<Placed>>> placed(stages);
  for (int r = 0; r < stages; r++) placed[r].resize(slots[r].size());
  for (size_t k = 0; k < messages.size(); k++) {
    const Message& m = messages[k];
    const Meeting& at = meetings[k];
    auto [gradient, micro_batch, from_stage] = m.id;
    ActionKind send = gradient ? ActionKind::send_gradient : ActionKind::send_activation;
    ActionKind recv = gradient ? ActionKind::recv_gradient : ActionKind::recv_activation;
    placed[m.r][at.recv_slot].push_back(
        {at.when, m.id, Action{recv, micro_batch, orders[m.r][m.i].chunk, m.q, false}});
    placed[m.q][at.send_slot].push_back(
        {at.when, m.id, Action{send, micro_batch, from_stage / stages, m.r, false}});
  }
  Schedule schedule(stages);
  for (int r = 0; r < stages; r++) {
    for (size_t i = 0; i < placed[r].size(); i++) {
      auto& group = placed[r][i];
      // The same order on both ends, so that messages between two ranks pair up in order.
      std::sort(group.begin(), group.end(), [](const Placed& x, const Placed& y) {
        return std::tie(x.when, x.message) < std::tie(y.when, y.message);
      });
      for (size_t k = 0; k < group.size(); k++) {
        group[k].action.batched_with_next = k + 1 < group.size();
        schedule[r].push_back(group[k].action);
      }
      if (i < orders[r].size()) schedule[r].push_back(orders[r][i]);
    }
  }
  return schedule;
}

}  // namespace

ScheduleKind parse_schedule_kind(std::string_view name) {
  if (name == "gpipe") return ScheduleKind::gpipe;
  if (name == "1f1b") return ScheduleKind::one_f_one_b;
  if (name == "interleaved") return ScheduleKind::interleaved;
  if (name == "zb") return ScheduleKind::zero_bubble;
  refuse("unknown pipeline schedule '" + std::string(name) + "': use one of " + kValidKinds);
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::gpipe: return "gpipe";
    case ScheduleKind::one_f_one_b: return "1f1b";
    case ScheduleKind::interleaved: return "interleaved";
    case ScheduleKind::zero_bubble: return "zb";
  }
  return "?";
}

const char* action_kind_name(ActionKind kind) {
  switch (kind) {
    case ActionKind::forward: return "forward";
    case ActionKind::backward: return "backward";
    case ActionKind::backward_input: return "backward_input";
    case ActionKind::backward_weight: return "backward_weight";
    case ActionKind::send_activation: return "send_activation";
    case ActionKind::recv_activation: return "recv_activation";
    case ActionKind::send_gradient: return "send_gradient";
    case ActionKind::recv_gradient: return "recv_gradient";
  }
  return "?";
}

double cost_of(ActionKind kind, const ActionCosts& costs) {
  switch (kind) {
    case ActionKind::forward: return costs.forward;
    case ActionKind::backward: return costs.backward;
    case ActionKind::backward_input: return costs.backward_input;
    case ActionKind::backward_weight: return costs.backward_weight;
    default: return 0;
  }
}

bool is_compute(ActionKind kind) {
  return kind == ActionKind::forward || kind == ActionKind::backward ||
         kind == ActionKind::backward_input || kind == ActionKind::backward_weight;
}

std::string to_string(const Action& action) {
  std::string s = std::string(action_kind_name(action.kind)) + "(mb " +
                  std::to_string(action.micro_batch) + ", chunk " + std::to_string(action.chunk);
  if (!is_compute(action.kind)) {
    bool send = action.kind == ActionKind::send_activation ||
                action.kind == ActionKind::send_gradient;
    s += std::string(send ? ", to rank " : ", from rank ") + std::to_string(action.peer);
  }
  return s + ")";
}

void check_schedule_layout(int stages, int micro_batches, ScheduleKind kind, int virtual_stages) {
  std::string name = schedule_kind_name(kind);
  if (stages < 1) refuse("pipeline stages must be >= 1, got " + std::to_string(stages));
  if (micro_batches < 1)
    refuse("micro-batches per step must be >= 1, got " + std::to_string(micro_batches) +
           ": raise --batch (micro-batches = --batch / (dp x --micro-batch))");
  if (virtual_stages < 1)
    refuse("virtual stages must be >= 1, got " + std::to_string(virtual_stages));
  std::string counts = "got " + std::to_string(micro_batches) + " micro-batches for " +
                       std::to_string(stages) + " stages";
  if (kind == ScheduleKind::interleaved) {
    if (virtual_stages < 2)
      refuse("schedule interleaved needs --virtual-stages >= 2 (got " +
             std::to_string(virtual_stages) + "); with one model chunk per stage use 1f1b");
    if (micro_batches % stages != 0)
      refuse("schedule interleaved needs micro-batches to be a multiple of the pipeline stages: " +
             counts + "; use --batch so that micro-batches is a multiple of " +
             std::to_string(stages) + " (micro-batches = --batch / (dp x --micro-batch))");
    return;
  }
  if (virtual_stages != 1)
    refuse("schedule " + name + " runs one model chunk per stage: use --virtual-stages 1 (got " +
           std::to_string(virtual_stages) + "), or --schedule interleaved");
  if ((kind == ScheduleKind::one_f_one_b || kind == ScheduleKind::zero_bubble) &&
      micro_batches < stages)
    refuse("schedule " + name + " needs at least as many micro-batches as stages: " + counts +
           "; use --batch so that micro-batches >= " + std::to_string(stages) +
           " (micro-batches = --batch / (dp x --micro-batch)), or --schedule gpipe");
}

Schedule make_schedule(int stages, int micro_batches, ScheduleKind kind, int virtual_stages) {
  check_schedule_layout(stages, micro_batches, kind, virtual_stages);
  switch (kind) {
    case ScheduleKind::gpipe: return add_p2p(gpipe_order(stages, micro_batches), stages, 1);
    case ScheduleKind::one_f_one_b:
      return add_p2p(one_f_one_b_order(stages, micro_batches, ActionKind::backward), stages, 1);
    case ScheduleKind::interleaved:
      return add_p2p(interleaved_order(stages, micro_batches, virtual_stages), stages,
                     virtual_stages);
    case ScheduleKind::zero_bubble:
      return add_p2p(zero_bubble_order(stages, micro_batches), stages, 1);
  }
  refuse("unknown schedule kind");
}

int peak_in_flight(const std::vector<Action>& rank_actions) {
  std::set<std::pair<int, int>> held;  // (micro-batch, chunk)
  int peak = 0;
  for (const Action& a : rank_actions) {
    if (a.kind == ActionKind::forward) held.insert({a.micro_batch, a.chunk});
    if (a.kind == ActionKind::backward || a.kind == ActionKind::backward_input)
      held.erase({a.micro_batch, a.chunk});
    peak = std::max(peak, static_cast<int>(held.size()));
  }
  return peak;
}

}  // namespace weft::parallel
