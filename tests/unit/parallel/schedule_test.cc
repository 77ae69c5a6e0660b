#include "parallel/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "parallel/schedule_sim.h"
#include "runtime/error.h"

namespace weft::parallel {
namespace {

constexpr ScheduleKind kKinds[] = {ScheduleKind::gpipe, ScheduleKind::one_f_one_b,
                                   ScheduleKind::interleaved, ScheduleKind::zero_bubble};

struct Layout {
  int stages, micro_batches, virtual_stages;
  ScheduleKind kind;
  std::string name() const {
    return std::string(schedule_kind_name(kind)) + " p=" + std::to_string(stages) +
           " m=" + std::to_string(micro_batches) + " v=" + std::to_string(virtual_stages);
  }
};

bool allowed(const Layout& l) {
  switch (l.kind) {
    case ScheduleKind::gpipe: return l.virtual_stages == 1;
    case ScheduleKind::one_f_one_b:
    case ScheduleKind::zero_bubble: return l.virtual_stages == 1 && l.micro_batches >= l.stages;
    case ScheduleKind::interleaved:
      return l.virtual_stages >= 2 && l.micro_batches % l.stages == 0;
  }
  return false;
}

// Every layout the tests sweep: stages 1..8, micro-batches 1..16, virtual stages 1..4.
std::vector<Layout> all_layouts() {
  std::vector<Layout> out;
  for (ScheduleKind kind : kKinds)
    for (int p = 1; p <= 8; p++)
      for (int m = 1; m <= 16; m++)
        for (int v = 1; v <= 4; v++)
          if (allowed({p, m, v, kind})) out.push_back({p, m, v, kind});
  return out;
}

bool is_backward(ActionKind k) { return k == ActionKind::backward || k == ActionKind::backward_input; }

// Where the executor needs data, it has it: a forward of a global stage after the first comes
// after its activation's receive, a backward before the last after its gradient's receive (on
// one pipeline rank, after the producing compute instead), each send after the compute that
// produced it, a micro-batch's backward after its forward, and zb's W after its B.
void check_order(const Schedule& s, const Layout& l) {
  int p = l.stages, last = p * l.virtual_stages - 1;
  for (int r = 0; r < p; r++) {
    std::map<std::tuple<int, int, int>, int> seen;  // (kind, mb, chunk) -> index
    for (int i = 0; i < static_cast<int>(s[r].size()); i++) {
      const Action& a = s[r][i];
      auto has = [&](ActionKind k) { return seen.count({static_cast<int>(k), a.micro_batch, a.chunk}) > 0; };
      int g = a.chunk * p + r;
      SCOPED_TRACE(l.name() + " rank " + std::to_string(r) + " " + to_string(a));
      switch (a.kind) {
        case ActionKind::forward:
          if (g > 0 && p > 1) {
            EXPECT_TRUE(has(ActionKind::recv_activation));
          } else if (g > 0) {
            EXPECT_TRUE(seen.count({static_cast<int>(a.kind), a.micro_batch, a.chunk - 1}));
          }
          break;
        case ActionKind::backward:
        case ActionKind::backward_input:
          EXPECT_TRUE(has(ActionKind::forward));
          if (g < last && p > 1) {
            EXPECT_TRUE(has(ActionKind::recv_gradient));
          } else if (g < last) {
            EXPECT_TRUE(seen.count({static_cast<int>(a.kind), a.micro_batch, a.chunk + 1}));
          }
          break;
        case ActionKind::backward_weight:
          EXPECT_TRUE(has(ActionKind::backward_input));
          break;
        case ActionKind::send_activation:
          EXPECT_TRUE(has(ActionKind::forward));
          break;
        case ActionKind::send_gradient:
          EXPECT_TRUE(has(ActionKind::backward) || has(ActionKind::backward_input));
          break;
        default:
          break;
      }
      EXPECT_TRUE(seen.insert({{static_cast<int>(a.kind), a.micro_batch, a.chunk}, i}).second)
          << "twice";
    }
  }
}

// Every global stage runs every micro-batch's forward and backward (zb: B and W) exactly once.
void check_coverage(const Schedule& s, const Layout& l) {
  int p = l.stages;
  std::map<std::tuple<int, int, int>, int> count;  // (global stage, mb, kind)
  for (int r = 0; r < p; r++)
    for (const Action& a : s[r])
      if (is_compute(a.kind)) count[{a.chunk * p + r, a.micro_batch, static_cast<int>(a.kind)}]++;
  std::vector<ActionKind> kinds = {ActionKind::forward};
  if (l.kind == ScheduleKind::zero_bubble)
    kinds.insert(kinds.end(), {ActionKind::backward_input, ActionKind::backward_weight});
  else
    kinds.push_back(ActionKind::backward);
  for (int g = 0; g < p * l.virtual_stages; g++)
    for (int mb = 0; mb < l.micro_batches; mb++)
      for (ActionKind k : kinds)
        EXPECT_EQ((count[{g, mb, static_cast<int>(k)}]), 1)
            << l.name() << " stage " << g << " mb " << mb << " " << action_kind_name(k);
  size_t expected = static_cast<size_t>(p) * l.virtual_stages * l.micro_batches * kinds.size();
  size_t total = 0;
  for (auto& [key, n] : count) total += n;
  EXPECT_EQ(total, expected) << l.name();
}

// Every send has exactly one receive on its peer carrying the same tensor (micro-batch, the
// neighbouring global stage, the same direction), matched here by content, not by order.
void check_p2p_pairs(const Schedule& s, const Layout& l) {
  int p = l.stages;
  // (src rank, dst rank, is gradient, mb, sender's global stage) -> sends minus receives
  std::map<std::tuple<int, int, bool, int, int>, int> balance;
  int sends = 0;
  for (int r = 0; r < p; r++)
    for (const Action& a : s[r]) {
      int g = a.chunk * p + r;
      switch (a.kind) {
        case ActionKind::send_activation:
          balance[{r, a.peer, false, a.micro_batch, g}]++;
          EXPECT_EQ(a.peer, (g + 1) % p) << l.name();
          sends++;
          break;
        case ActionKind::send_gradient:
          balance[{r, a.peer, true, a.micro_batch, g}]++;
          EXPECT_EQ(a.peer, (g - 1) % p) << l.name();
          sends++;
          break;
        case ActionKind::recv_activation: balance[{a.peer, r, false, a.micro_batch, g - 1}]--; break;
        case ActionKind::recv_gradient: balance[{a.peer, r, true, a.micro_batch, g + 1}]--; break;
        default: break;
      }
    }
  for (auto& [key, n] : balance) EXPECT_EQ(n, 0) << l.name() << " unmatched p2p";
  // Two messages per micro-batch per stage boundary, none when one rank holds all stages.
  int boundaries = p > 1 ? p * l.virtual_stages - 1 : 0;
  EXPECT_EQ(sends, 2 * boundaries * l.micro_batches) << l.name();
}

int in_flight_peak(const std::vector<Action>& actions) {
  int held = 0, peak = 0;
  for (const Action& a : actions) {
    held += a.kind == ActionKind::forward ? 1 : is_backward(a.kind) ? -1 : 0;
    peak = std::max(peak, held);
  }
  return peak;
}

TEST(Schedule, EveryLayoutIsCompleteOrderedMatchedAndRunsToTheEnd) {
  int layouts = 0;
  for (const Layout& l : all_layouts()) {
    Schedule s = make_schedule(l.stages, l.micro_batches, l.kind, l.virtual_stages);
    ASSERT_EQ(static_cast<int>(s.size()), l.stages);
    check_order(s, l);
    check_coverage(s, l);
    check_p2p_pairs(s, l);
    SimResult sim = simulate_schedule(s);
    EXPECT_TRUE(sim.completed) << l.name() << ": " << sim.problem;
    EXPECT_TRUE(sim.stuck.empty()) << l.name();
    layouts++;
  }
  EXPECT_GT(layouts, 400);
}

TEST(Schedule, OneFOneBAndZbHoldAtMostStagesMicroBatchesOnStageZero) {
  for (const Layout& l : all_layouts()) {
    if (l.kind != ScheduleKind::one_f_one_b && l.kind != ScheduleKind::zero_bubble) continue;
    Schedule s = make_schedule(l.stages, l.micro_batches, l.kind, 1);
    EXPECT_EQ(in_flight_peak(s[0]), std::min(l.stages, l.micro_batches)) << l.name();
    for (int r = 0; r < l.stages; r++) {
      EXPECT_LE(in_flight_peak(s[r]), l.stages - r) << l.name() << " rank " << r;
      EXPECT_EQ(peak_in_flight(s[r]), in_flight_peak(s[r])) << l.name() << " rank " << r;
    }
  }
  // GPipe, by contrast, holds every micro-batch.
  EXPECT_EQ(peak_in_flight(make_schedule(4, 12, ScheduleKind::gpipe)[0]), 12);
}

TEST(Schedule, GpipeAndOneFOneBIdleFractionIsTheClassicBubble) {
  for (const Layout& l : all_layouts()) {
    if (l.kind != ScheduleKind::gpipe && l.kind != ScheduleKind::one_f_one_b) continue;
    SimResult sim = simulate_schedule(make_schedule(l.stages, l.micro_batches, l.kind, 1));
    ASSERT_TRUE(sim.completed) << l.name() << ": " << sim.problem;
    int p = l.stages, m = l.micro_batches;
    // Forward 1 + backward 2 per micro-batch on each rank, and the bubble (p-1) x 3.
    EXPECT_EQ(sim.makespan, 3.0 * (m + p - 1)) << l.name();
    for (double b : sim.busy) EXPECT_EQ(b, 3.0 * m) << l.name();
    EXPECT_NEAR(sim.idle_fraction, double(p - 1) / (m + p - 1), 1e-12) << l.name();
  }
}

// Megatron's interleaved bubble: the (p - 1) x (F + B) of 1F1B, but each chunk's F and B cost
// what a whole stage's do here, so v chunks make v times the work behind the same bubble:
// makespan 3 (v m + p - 1), idle (p - 1) / (v m + p - 1) against 1F1B's (p - 1) / (m + p - 1).
// Measured by the simulator (m = 8, v = 2): p = 2: 0.0588 against 1F1B's 0.1111; p = 4: 0.1579
// against 0.2727. Before receivers waited for a busy sender (schedule.cc, add_p2p), senders
// waited instead and p = 2, m = 8 idled 0.1579, more than 1F1B.
TEST(Schedule, InterleavedIdlesLessThanOneFOneB) {
  int layouts = 0;
  for (const Layout& l : all_layouts()) {
    if (l.kind != ScheduleKind::interleaved || l.stages < 2) continue;
    SimResult sim =
        simulate_schedule(make_schedule(l.stages, l.micro_batches, l.kind, l.virtual_stages));
    ASSERT_TRUE(sim.completed) << l.name() << ": " << sim.problem;
    int p = l.stages, m = l.micro_batches, v = l.virtual_stages;
    EXPECT_EQ(sim.makespan, 3.0 * (v * m + p - 1)) << l.name();
    EXPECT_NEAR(sim.idle_fraction, double(p - 1) / (v * m + p - 1), 1e-12) << l.name();
    double one_f_one_b = double(p - 1) / (m + p - 1);
    EXPECT_LT(sim.idle_fraction, one_f_one_b - 1e-9) << l.name();
    if (m == 8 && v == 2 && (p == 2 || p == 4))
      std::printf("interleaved p=%d m=%d v=%d: idle %.4f, 1f1b (p-1)/(m+p-1) = %.4f\n", p, m, v,
                  sim.idle_fraction, one_f_one_b);
    layouts++;
  }
  EXPECT_EQ(layouts, 78);
}

TEST(Schedule, ZeroBubbleIdlesLessThanOneFOneB) {
  for (const Layout& l : all_layouts()) {
    if (l.kind != ScheduleKind::zero_bubble || l.stages < 2) continue;
    SimResult zb = simulate_schedule(make_schedule(l.stages, l.micro_batches, l.kind, 1));
    SimResult one_f_one_b =
        simulate_schedule(make_schedule(l.stages, l.micro_batches, ScheduleKind::one_f_one_b, 1));
    ASSERT_TRUE(zb.completed) << l.name() << ": " << zb.problem;
    EXPECT_LT(zb.idle_fraction, one_f_one_b.idle_fraction - 1e-9) << l.name();
    EXPECT_LT(zb.makespan, one_f_one_b.makespan) << l.name();
    // ZB-H1's bubble: (p - 1) x (F + B - W) = p - 1 against 1F1B's 3 (p - 1).
    EXPECT_EQ(zb.makespan, 3.0 * l.micro_batches + l.stages - 1) << l.name();
  }
}

TEST(Schedule, OneStageHasNoP2pAndNoBubble) {
  for (ScheduleKind kind : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b,
                            ScheduleKind::zero_bubble}) {
    Schedule s = make_schedule(1, 5, kind, 1);
    for (const Action& a : s[0]) EXPECT_TRUE(is_compute(a.kind)) << to_string(a);
    EXPECT_EQ(simulate_schedule(s).idle_fraction, 0);
  }
}

TEST(ScheduleSim, ReportsTheDeadlockOfTwoRanksThatBothSendFirst) {
  Schedule s(2);
  s[0] = {{ActionKind::forward, 0, 0, -1, false},
          {ActionKind::send_activation, 0, 0, 1, false},
          {ActionKind::recv_gradient, 0, 0, 1, false},
          {ActionKind::backward, 0, 0, -1, false}};
  s[1] = {{ActionKind::send_gradient, 0, 0, 0, false},
          {ActionKind::recv_activation, 0, 0, 0, false}};
  SimResult sim = simulate_schedule(s);
  EXPECT_FALSE(sim.completed);
  ASSERT_EQ(sim.stuck.size(), 2u);
  EXPECT_EQ(sim.stuck[0].rank, 0);
  EXPECT_EQ(sim.stuck[0].action_index, 1);
  EXPECT_EQ(sim.stuck[0].action.kind, ActionKind::send_activation);
  EXPECT_EQ(sim.stuck[1].rank, 1);
  EXPECT_EQ(sim.stuck[1].action_index, 0);
  EXPECT_NE(sim.problem.find("deadlocks"), std::string::npos) << sim.problem;
  EXPECT_NE(sim.problem.find("rank 1 action 0 send_gradient(mb 0, chunk 0, to rank 0)"),
            std::string::npos) << sim.problem;

  // Batching each rank's pair makes the same exchange complete.
  s[0][1].batched_with_next = true;
  s[1][0].batched_with_next = true;
  SimResult batched = simulate_schedule(s);
  EXPECT_TRUE(batched.completed) << batched.problem;
  EXPECT_EQ(batched.makespan, 3);
}

TEST(ScheduleSim, ReportsASendWithoutItsReceive) {
  Schedule s(2);
  s[0] = {{ActionKind::forward, 0, 0, -1, false}, {ActionKind::send_activation, 0, 0, 1, false}};
  s[1] = {{ActionKind::forward, 0, 0, -1, false}};
  SimResult sim = simulate_schedule(s);
  EXPECT_FALSE(sim.completed);
  EXPECT_NE(sim.problem.find("no matching receive on rank 1"), std::string::npos) << sim.problem;
}

TEST(ScheduleSim, ReportsReceivesPostedInAnotherOrderThanTheSends) {
  // Rank 0 sends micro-batch 0 then 1; rank 1 receives 1 first: in-order p2p would hand it 0.
  Schedule s(2);
  s[0] = {{ActionKind::send_activation, 0, 0, 1, false},
          {ActionKind::send_activation, 1, 0, 1, false}};
  s[1] = {{ActionKind::recv_activation, 1, 0, 0, false},
          {ActionKind::recv_activation, 0, 0, 0, false}};
  SimResult sim = simulate_schedule(s);
  EXPECT_FALSE(sim.completed);
  EXPECT_NE(sim.problem.find("expects another tensor"), std::string::npos) << sim.problem;
}

TEST(ScheduleSim, IdleFractionOfAHandMadeSchedule) {
  // Rank 0: F (1), send; rank 1: recv, F (1). Makespan 2, busy 1 + 1: half idle.
  Schedule s(2);
  s[0] = {{ActionKind::forward, 0, 0, -1, false}, {ActionKind::send_activation, 0, 0, 1, false}};
  s[1] = {{ActionKind::recv_activation, 0, 0, 0, false}, {ActionKind::forward, 0, 0, -1, false}};
  SimResult sim = simulate_schedule(s);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_EQ(sim.makespan, 2);
  EXPECT_EQ(sim.busy, (std::vector<double>{1, 1}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.5);
}

TEST(ScheduleKindNames, ParseAndNameRoundTrip) {
  for (ScheduleKind kind : kKinds) EXPECT_EQ(parse_schedule_kind(schedule_kind_name(kind)), kind);
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::one_f_one_b), "1f1b");
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::zero_bubble), "zb");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(ScheduleKindNames, UnknownNameListsTheValidOnes) {
  std::string msg = error_of([] { parse_schedule_kind("pipedream"); });
  EXPECT_NE(msg.find("'pipedream'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpipe, 1f1b, interleaved, zb"), std::string::npos) << msg;
}

TEST(ScheduleLayout, RefusesWhatCannotRunSayingWhatToChange) {
  auto msg = [](int p, int m, ScheduleKind k, int v) {
    return error_of([&] { make_schedule(p, m, k, v); });
  };
  EXPECT_NE(msg(0, 4, ScheduleKind::gpipe, 1).find("stages must be >= 1, got 0"),
            std::string::npos);
  EXPECT_NE(msg(2, 0, ScheduleKind::gpipe, 1).find("micro-batches per step must be >= 1"),
            std::string::npos);
  EXPECT_NE(msg(2, 4, ScheduleKind::interleaved, 0).find("virtual stages must be >= 1"),
            std::string::npos);
  for (ScheduleKind k : {ScheduleKind::one_f_one_b, ScheduleKind::zero_bubble}) {
    std::string m = msg(4, 3, k, 1);
    EXPECT_NE(m.find("got 3 micro-batches for 4 stages"), std::string::npos) << m;
    EXPECT_NE(m.find("use --batch so that micro-batches >= 4"), std::string::npos) << m;
  }
  for (ScheduleKind k : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b,
                         ScheduleKind::zero_bubble}) {
    std::string m = msg(2, 4, k, 2);
    EXPECT_NE(m.find("use --virtual-stages 1 (got 2)"), std::string::npos) << m;
  }
  std::string one_chunk = msg(2, 4, ScheduleKind::interleaved, 1);
  EXPECT_NE(one_chunk.find("needs --virtual-stages >= 2 (got 1)"), std::string::npos) << one_chunk;
  std::string ragged = msg(4, 6, ScheduleKind::interleaved, 2);
  EXPECT_NE(ragged.find("got 6 micro-batches for 4 stages"), std::string::npos) << ragged;
  EXPECT_NE(ragged.find("multiple of 4"), std::string::npos) << ragged;
  // GPipe runs any number of micro-batches, fewer than stages included.
  EXPECT_NO_THROW(make_schedule(4, 1, ScheduleKind::gpipe, 1));
}

}  // namespace
}  // namespace weft::parallel
