// The simulator's costs, copies and shared cores against timelines worked out by hand.
#include "parallel/schedule_sim.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "runtime/error.h"

namespace weft::parallel {
namespace {

Action compute(ActionKind kind, int micro_batch = 0) { return {kind, micro_batch, 0, -1, false}; }
Action p2p(ActionKind kind, int peer, int micro_batch = 0) {
  return {kind, micro_batch, 0, peer, false};
}
SimMachine on_cores(double cores) {
  SimMachine m;
  m.cores = cores;
  return m;
}

TEST(ScheduleSimCosts, TwoStages1f1bWithBackwardThreeForwards) {
  // make_schedule(2, 2, 1f1b), F = 1, B = 3, a core each:
  //   rank 0: F0 [0,1] F1 [1,2] (waits for rank 1's B0) B0 [5,8] B1 [9,12]
  //   rank 1: F0 [1,2] B0 [2,5] F1 [5,6] B1 [6,9]
  // Makespan 12, each rank busy 8: idle 1 - 16/24.
  ActionCosts c;
  c.backward = 3;
  SimResult sim = simulate_schedule(make_schedule(2, 2, ScheduleKind::one_f_one_b), c);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 12);
  EXPECT_EQ(sim.busy, (std::vector<double>{8, 8}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 1.0 / 3);
}

TEST(ScheduleSimCosts, EachRankItsOwnCosts) {
  // gpipe, one micro-batch; rank 1 (say the head and loss) twice as slow as rank 0:
  //   rank 0: F [0,1], B [7,9]; rank 1: F [1,3], B [3,7]. Busy 3 and 6 of 9 each.
  SimMachine m;
  m.costs = {ActionCosts{1, 2, 1, 1, 0}, ActionCosts{2, 4, 2, 2, 0}};
  SimResult sim = simulate_schedule(make_schedule(2, 1, ScheduleKind::gpipe), m);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 9);
  EXPECT_EQ(sim.busy, (std::vector<double>{3, 6}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.5);
}

TEST(ScheduleSimCosts, CopiesTakeTimeOnBothEndsAndCountAsIdle) {
  // Rank 0: F [0,1], its send copies [1,1.5]; rank 1 waits, copies [1,1.5], F [1.5,2.5].
  Schedule s(2);
  s[0] = {compute(ActionKind::forward), p2p(ActionKind::send_activation, 1)};
  s[1] = {p2p(ActionKind::recv_activation, 0), compute(ActionKind::forward)};
  ActionCosts c;
  c.transfer = 0.5;
  SimResult sim = simulate_schedule(s, c);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 2.5);
  EXPECT_EQ(sim.busy, (std::vector<double>{1, 1}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.6);
  // A batched group of two messages copies both.
  Schedule b(2);
  b[0] = {compute(ActionKind::forward), p2p(ActionKind::send_activation, 1),
          p2p(ActionKind::send_activation, 1, 1), compute(ActionKind::forward)};
  b[0][1].batched_with_next = true;
  b[1] = {p2p(ActionKind::recv_activation, 0), p2p(ActionKind::recv_activation, 0, 1),
          compute(ActionKind::forward)};
  b[1][0].batched_with_next = true;
  // Rank 0: F [0,1], copies [1,2], F [2,3]; rank 1: copies [1,2], F [2,3].
  sim = simulate_schedule(b, c);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 3);
  EXPECT_EQ(sim.busy, (std::vector<double>{2, 1}));
}

TEST(ScheduleSimCores, FourBusyRanksOnTwoCoresRunAtHalfSpeed) {
  Schedule s(4, std::vector<Action>{compute(ActionKind::forward)});
  SimResult sim = simulate_schedule(s, on_cores(2));
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 2);
  EXPECT_EQ(sim.busy, (std::vector<double>{2, 2, 2, 2}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0);
}

TEST(ScheduleSimCores, AWaitingRankLeavesItsShareToTheOthers) {
  // 4 ranks on 2 cores. Ranks 0, 1 and 2 compute F = 1 while rank 3 waits for rank 2: three
  // runnable at 2/3 speed, done at 1.5; then rank 3 alone at full speed, [1.5, 2.5].
  // Busy 1.5 + 1.5 + 1.5 + 1 of 4 x 2.5: idle 0.45.
  Schedule s(4);
  s[0] = {compute(ActionKind::forward)};
  s[1] = {compute(ActionKind::forward)};
  s[2] = {compute(ActionKind::forward), p2p(ActionKind::send_activation, 3)};
  s[3] = {p2p(ActionKind::recv_activation, 2), compute(ActionKind::forward)};
  SimResult sim = simulate_schedule(s, on_cores(2));
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 2.5);
  EXPECT_EQ(sim.busy, (std::vector<double>{1.5, 1.5, 1.5, 1}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.45);
}

TEST(ScheduleSimCores, TwoStages1f1bOnOneCore) {
  // make_schedule(2, 2, 1f1b), F = 1, B = 2, both ranks on one core:
  //   [0,1]  rank 0 F0 alone
  //   [1,3]  rank 0 F1 and rank 1 F0 at half speed
  //   [3,5]  rank 1 B0 alone (rank 0 waits for its gradient)
  //   [5,7]  rank 0 B0 (half done) and rank 1 F1, at half speed
  //   [7,9]  rank 0 B0 (done) and rank 1 B1 (half done)
  //   [9,10] rank 1 B1 alone; [10,12] rank 0 B1 alone.
  // Each rank busy 9 of 12: idle 0.25, where a core each gives 1/3 (over 9).
  SimResult sim = simulate_schedule(make_schedule(2, 2, ScheduleKind::one_f_one_b), on_cores(1));
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 12);
  EXPECT_EQ(sim.busy, (std::vector<double>{9, 9}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.25);
}

TEST(ScheduleSimCores, FourStagesGpipeOnTwoCores) {
  // make_schedule(4, 3, gpipe), F = 1, B = 2, 4 ranks on 2 cores (k runnable: min(1, 2/k)):
  //   [0,1]     r0 F0                  [7,9]    r3 B0
  //   [1,2]     r0 F1, r1 F0           [9,11]   r3 B1, r2 B0
  //   [2,3.5]   r0 F2, r1 F1, r2 F0    [11,14]  r3 B2, r2 B1, r1 B0 (2/3 speed)
  //   [3.5,5]   r1 F2, r2 F1, r3 F0    [14,17]  r2 B2, r1 B1, r0 B0 (2/3 speed)
  //   [5,6]     r2 F2, r3 F1           [17,19]  r1 B2, r0 B1
  //   [6,7]     r3 F2                  [19,21]  r0 B2
  // Busy 10.5, 12, 12, 10.5 of 21 each: idle 1 - 45/84.
  SimResult sim = simulate_schedule(make_schedule(4, 3, ScheduleKind::gpipe), on_cores(2));
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 21);
  ASSERT_EQ(sim.busy.size(), 4u);
  EXPECT_DOUBLE_EQ(sim.busy[0], 10.5);
  EXPECT_DOUBLE_EQ(sim.busy[1], 12);
  EXPECT_DOUBLE_EQ(sim.busy[2], 12);
  EXPECT_DOUBLE_EQ(sim.busy[3], 10.5);
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 1 - 45.0 / 84);
}

TEST(ScheduleSimCores, EnoughCoresIsACoreEach) {
  Schedule s = make_schedule(4, 8, ScheduleKind::one_f_one_b);
  SimResult own = simulate_schedule(s);
  for (double cores : {4.0, 6.5}) {
    SimResult sim = simulate_schedule(s, on_cores(cores));
    EXPECT_DOUBLE_EQ(sim.makespan, own.makespan) << cores;
    EXPECT_DOUBLE_EQ(sim.idle_fraction, own.idle_fraction) << cores;
  }
  // On 2 cores the 4 ranks' 96 units of work take at least 48; the ramps run faster than at
  // a core each, so less of the time is bubble.
  SimResult two = simulate_schedule(s, on_cores(2));
  ASSERT_TRUE(two.completed) << two.problem;
  EXPECT_GE(two.makespan, 48);
  EXPECT_LT(two.idle_fraction, own.idle_fraction);
}

// F = 1, B = 2, each rank's computes all on the CPU `cpu` gives it.
SimMachine placed(const Schedule& s, const std::vector<int>& cpu) {
  SimMachine m;
  m.costs = {ActionCosts{1, 2, 1, 1, 0}};
  m.cores = 2;  // not used: the placement says how the cores are shared
  for (size_t r = 0; r < s.size(); r++) {
    size_t computes = 0;
    for (const Action& a : s[r]) computes += is_compute(a.kind);
    m.cpus.emplace_back(computes, cpu[r]);
  }
  return m;
}

TEST(ScheduleSimPlaced, FourStagesGpipeNeighboursSharingACpu) {
  // make_schedule(4, 3, gpipe), F = 1, B = 2, ranks 0 and 1 on CPU 0, 2 and 3 on CPU 1; two
  // runnable on one CPU run at half speed, one alone at full speed:
  //   [0,1]   r0 F0                     [9,11]   r3 B0
  //   [1,3]   r0 F1, r1 F0 (CPU 0, 1/2) [11,15]  r3 B1, r2 B0 (CPU 1, 1/2)
  //   [3,5]   r0 F2, r1 F1 (1/2); r2 F0 [3,4], r3 F0 [4,5] (r2 waits for F1)
  //   [5,6]   r1 F2, r2 F1 (each alone on its CPU)
  //   [6,8]   r2 F2, r3 F1 (CPU 1, 1/2)  [15,19]  r3 B2, r2 B1 (1/2); r1 B0 [15,17], r0 B0 [17,19]
  //   [8,9]   r3 F2                     [19,21]  r2 B2, r1 B1 (each alone)
  //                                     [21,25]  r1 B2, r0 B1 (CPU 0, 1/2); [25,27] r0 B2
  // Busy 13, 13, 14, 14 of 27 each: idle 1 - 54/108, where sharing 2 cores among all four
  // gives 21 and 1 - 45/84 (FourStagesGpipeOnTwoCores).
  Schedule s = make_schedule(4, 3, ScheduleKind::gpipe);
  SimResult sim = simulate_schedule(s, placed(s, {0, 0, 1, 1}));
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 27);
  EXPECT_EQ(sim.busy, (std::vector<double>{13, 13, 14, 14}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.5);
}

TEST(ScheduleSimPlaced, FourStagesGpipeEndsSharingACpu) {
  // The same on CPUs {0, 3} and {1, 2}: the ends, which wait most, leave their CPU-mate alone.
  //   [0,1] r0 F0; [1,2] r0 F1, r1 F0; [2,3] r0 F2 (its send waits for r1 until 4)
  //   [2,4]   r1 F1, r2 F0 (CPU 1, 1/2)  [8,10]   r3 B0
  //   [4,6]   r1 F2, r2 F1 (1/2); r3 F0 [4,5]   [10,12]  r3 B1 (CPU 0); r2 B0 (CPU 1)
  //   [6,7]   r2 F2; r3 F1               [12,16]  r2 B1, r1 B0 (1/2); r3 B2 [12,14]
  //   [7,8]   r3 F2                      [16,20]  r2 B2, r1 B1 (1/2); r0 B0 [16,18]
  //                                      [20,22]  r1 B2, r0 B1; [22,24] r0 B2
  // Busy 9, 15, 15, 9 of 24 each: idle 1 - 48/96.
  Schedule s = make_schedule(4, 3, ScheduleKind::gpipe);
  SimResult sim = simulate_schedule(s, placed(s, {0, 1, 1, 0}));
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 24);
  EXPECT_EQ(sim.busy, (std::vector<double>{9, 15, 15, 9}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.5);
}

TEST(ScheduleSimPlaced, ARankThatMovesTakesItsShareToItsNewCpu) {
  // make_schedule(2, 2, 1f1b), F = 1, B = 2; rank 0 runs F0 F1 on CPU 0 and B0 B1 on CPU 1,
  // rank 1 all on CPU 0 (all on one CPU: TwoStages1f1bOnOneCore's 12 and 1/4):
  //   [0,1] r0 F0; [1,3] r0 F1, r1 F0 (CPU 0, 1/2); [3,5] r1 B0 (r0 waits for its gradient)
  //   [5,7] r0 B0 (CPU 1) and r1 F1 [5,6], B1 [6,8] (CPU 0), each alone; [8,10] r0 B1
  // Busy 7 each of 10: idle 0.3.
  Schedule s = make_schedule(2, 2, ScheduleKind::one_f_one_b);
  SimMachine m = placed(s, {0, 0});
  m.cpus[0] = {0, 0, 1, 1};
  SimResult sim = simulate_schedule(s, m);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 10);
  EXPECT_EQ(sim.busy, (std::vector<double>{7, 7}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 0.3);
}

TEST(ScheduleSimPlaced, AlikeProcessesTakeTheirShare) {
  // make_schedule(2, 1, gpipe), F = 1, B = 2, each rank's CPU shared with the same stage of
  // another pipeline, computing when it does: every compute at half speed, one rank at a time.
  //   r0 F0 [0,2], r1 F0 [2,4], r1 B0 [4,8], r0 B0 [8,12]: busy 6 each of 12.
  Schedule s = make_schedule(2, 1, ScheduleKind::gpipe);
  SimMachine m = placed(s, {0, 1});
  m.alike_cpus = {{{0, 0}}, {{1, 1}}};
  SimResult sim = simulate_schedule(s, m);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 12);
  EXPECT_EQ(sim.busy, (std::vector<double>{6, 6}));
  // On other CPUs they take nothing from it: a CPU each.
  m.alike_cpus = {{{2, 2}}, {{3, 3}}};
  EXPECT_DOUBLE_EQ(simulate_schedule(s, m).makespan, 6);
}

TEST(ScheduleSimReplay, EachComputeTakesItsOwnDuration) {
  // make_schedule(2, 2, 1f1b) replayed; rank 0 runs F0 F1 B0 B1, rank 1 F0 B0 F1 B1:
  //   rank 0: F0 [0,1] F1 [1,3] (waits) B0 [10,12] (waits) B1 [15,16]
  //   rank 1: F0 [1,2] (waits for F1) B0 [3,10] F1 [10,11] B1 [11,15]
  // Busy 6 and 13 of 16 each; the cores are not used (the durations hold the slowdowns).
  SimMachine m;
  m.durations = {{1, 2, 2, 1}, {1, 7, 1, 4}};
  m.cores = 1;
  SimResult sim = simulate_schedule(make_schedule(2, 2, ScheduleKind::one_f_one_b), m);
  ASSERT_TRUE(sim.completed) << sim.problem;
  EXPECT_DOUBLE_EQ(sim.makespan, 16);
  EXPECT_EQ(sim.busy, (std::vector<double>{6, 13}));
  EXPECT_DOUBLE_EQ(sim.idle_fraction, 1 - 19.0 / 32);
  m.durations[1].pop_back();
  EXPECT_THROW(simulate_schedule(make_schedule(2, 2, ScheduleKind::one_f_one_b), m), Error);
}

TEST(ScheduleSimMachine, RefusesCostsThatDoNotFitTheRanks) {
  Schedule s = make_schedule(2, 2, ScheduleKind::one_f_one_b);
  SimMachine three;
  three.costs.resize(3);
  EXPECT_THROW(simulate_schedule(s, three), Error);
  SimMachine negative;
  negative.cores = -1;
  EXPECT_THROW(simulate_schedule(s, negative), Error);
  SimMachine bad_cost;
  bad_cost.costs = {ActionCosts{1, -2, 1, 1, 0}};
  EXPECT_THROW(simulate_schedule(s, bad_cost), Error);
  SimMachine short_cpus;
  short_cpus.cpus = {{0, 0, 0, 0}, {0, 0, 0}};  // rank 1 has 4 computes
  EXPECT_THROW(simulate_schedule(s, short_cpus), Error);
  SimMachine alike_only;
  alike_only.alike_cpus = {{{0, 0, 0, 0}}, {{1, 1, 1, 1}}};
  EXPECT_THROW(simulate_schedule(s, alike_only), Error);
}

}  // namespace
}  // namespace weft::parallel
