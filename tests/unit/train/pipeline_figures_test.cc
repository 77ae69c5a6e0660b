// A step's pipeline figures: measured idle counted like the simulator's, the ranks' costs
// carried through the gather, and the simulator run on them.
#include "train/pipeline_figures.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weft::train {
namespace {

using parallel::ActionCosts;
using parallel::ActionKind;

TEST(PipelineFigures, MeanCostsPerKindAndTheShortestCopy) {
  parallel::PipelineTimes t;
  t.computes[static_cast<size_t>(ActionKind::forward)] = 4;
  t.compute_cpu[static_cast<size_t>(ActionKind::forward)] = 2.0;
  t.compute_wall[static_cast<size_t>(ActionKind::forward)] = 4.0;
  t.computes[static_cast<size_t>(ActionKind::backward)] = 2;
  t.compute_cpu[static_cast<size_t>(ActionKind::backward)] = 3.0;
  t.compute_wall[static_cast<size_t>(ActionKind::backward)] = 5.0;
  t.shortest_copy = 0.25;
  ActionCosts cpu = t.costs(true), wall = t.costs(false);
  EXPECT_DOUBLE_EQ(cpu.forward, 0.5);
  EXPECT_DOUBLE_EQ(cpu.backward, 1.5);
  EXPECT_DOUBLE_EQ(cpu.backward_input, 0);  // none ran
  EXPECT_DOUBLE_EQ(cpu.transfer, 0.25);
  EXPECT_DOUBLE_EQ(wall.forward, 1.0);
  EXPECT_DOUBLE_EQ(wall.backward, 2.5);
  EXPECT_DOUBLE_EQ(parallel::PipelineTimes{}.costs(true).transfer, 0);  // no exchange
}

TEST(PipelineFigures, TheGatherPicksThisRanksPipelineStageByStage) {
  // dp 2 x tp 1 x pp 2: ranks 0, 1 are dp 0's stages 0, 1; ranks 2, 3 dp 1's. gpipe with one
  // micro-batch: two computes per rank.
  parallel::Schedule schedule = parallel::make_schedule(2, 1, parallel::ScheduleKind::gpipe);
  ASSERT_EQ(words_per_rank(schedule), 8u + 2u * 2u);
  std::vector<uint64_t> words;
  for (int r = 0; r < 4; r++) {
    StageStep s;
    s.seconds = 10 + r;
    s.costs = ActionCosts{1.0 + r, 2.0 + r, 0.5, 0.25, 0.125 * r};
    s.durations = {0.5 * r, 0.75 * r};
    if (r != 3) s.cpus = {10 + r, 20 + r};  // rank 3: no CPUs
    std::vector<uint64_t> w = to_words(s, schedule);
    ASSERT_EQ(w.size(), words_per_rank(schedule));
    words.insert(words.end(), w.begin(), w.end());
  }
  parallel::MeshShape shape;
  shape.dp = 2;
  shape.pp = 2;
  std::vector<StageStep> mine =
      pipeline_steps(words, schedule, shape, parallel::MeshCoords{1, 0, 1});
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_DOUBLE_EQ(mine[0].seconds, 12);
  EXPECT_DOUBLE_EQ(mine[1].seconds, 13);
  EXPECT_DOUBLE_EQ(mine[1].costs.forward, 4);
  EXPECT_DOUBLE_EQ(mine[1].costs.backward, 5);
  EXPECT_DOUBLE_EQ(mine[1].costs.backward_weight, 0.25);
  EXPECT_DOUBLE_EQ(mine[1].costs.transfer, 0.375);
  EXPECT_EQ(mine[0].durations, (std::vector<double>{1.0, 1.5}));
  EXPECT_EQ(mine[1].durations, (std::vector<double>{1.5, 2.25}));
  // Each stage's own CPU, and the CPU of the other pipeline's rank at that stage.
  using Cpus = std::vector<std::vector<int>>;
  EXPECT_EQ(mine[0].cpus, (std::vector<int>{12, 22}));
  EXPECT_TRUE(mine[1].cpus.empty());
  EXPECT_EQ(mine[0].alike_cpus, (Cpus{{10, 20}}));
  EXPECT_EQ(mine[1].alike_cpus, (Cpus{{11, 21}}));
}

TEST(PipelineFigures, ComputesArePlacedWhereTheyRanUnlessTooManyMoved) {
  parallel::PipelineTimes t;
  t.cpus = {-1, 1, 1, 0, -1, 0, 1, 1, 0, 0};  // 8 of 10 stayed: those that moved take a neighbour's
  EXPECT_EQ(stage_step(t, true).cpus, (std::vector<int>{1, 1, 1, 0, 0, 0, 1, 1, 0, 0}));
  EXPECT_TRUE(stage_step(t, false).cpus.empty());  // several threads, or a GPU: no placement
  t.cpus[1] = -1;                                  // 7 of 10
  EXPECT_TRUE(stage_step(t, true).cpus.empty());
  EXPECT_TRUE(stage_step(parallel::PipelineTimes{}, true).cpus.empty());
}

TEST(PipelineFigures, PlacedRanksShareTheirCpusElseAllTheCores) {
  // make_schedule(4, 3, gpipe), F = 1, B = 2 on 2 cores: ranks {0, 1} and {2, 3} on a CPU each
  // idle 1 - 54/108 (schedule_sim_test's FourStagesGpipeNeighboursSharingACpu); one rank of
  // unknown placement: the 2 cores shared by all, 1 - 45/84 (FourStagesGpipeOnTwoCores).
  parallel::Schedule s = parallel::make_schedule(4, 3, parallel::ScheduleKind::gpipe);
  std::vector<StageStep> stages(4);
  for (int r = 0; r < 4; r++) {
    stages[r].seconds = 1;
    stages[r].costs = ActionCosts{1, 2, 0, 0, 0};
    stages[r].durations.assign(6, 1.0);
    stages[r].cpus.assign(6, r / 2);
  }
  PipelineFigures f = pipeline_figures(s, stages, 2);
  EXPECT_TRUE(f.per_cpu);
  EXPECT_DOUBLE_EQ(f.idle_sim, 0.5);
  StepStats step;
  record_pipeline(step, f);
  EXPECT_STREQ(step.pipeline_sim_cores, "per_cpu");
  EXPECT_NE(json_line(step).find(R"("pipeline_sim_cores":"per_cpu")"), std::string::npos);
  stages[3].alike_cpus = {{}};  // another pipeline's rank at stage 3 moved too much
  f = pipeline_figures(s, stages, 2);
  EXPECT_FALSE(f.per_cpu);
  EXPECT_DOUBLE_EQ(f.idle_sim, 1 - 45.0 / 84);
  record_pipeline(step, f);
  EXPECT_STREQ(step.pipeline_sim_cores, "shared");
}

TEST(PipelineFigures, MeasuredIdleIsWaitingOverRanksTimesTheLongestRank) {
  // Rank 0: 10 s, 4 in exchanges of which 1 without a core; rank 1: 8 s, 1 in exchanges, and
  // idle for the 2 s until rank 0 ends: (3 + 3) / (2 x 10). The simulator at F = 1, B = 3 on
  // two stages, two micro-batches: 1/3 (schedule_sim_test.cc works it out), and on one core at
  // the default costs 0.25; the replay of each rank's computes as they ran (schedule_sim_test's
  // replay): 1 - 19/32.
  std::vector<StageStep> stages(2);
  stages[0] = StageStep{10, 4, 1, ActionCosts{1, 3, 0, 0, 0}, {1, 2, 2, 1}, {}, {}};
  stages[1] = StageStep{8, 1, 0, ActionCosts{1, 3, 0, 0, 0}, {1, 7, 1, 4}, {}, {}};
  parallel::Schedule s = parallel::make_schedule(2, 2, parallel::ScheduleKind::one_f_one_b);
  PipelineFigures f = pipeline_figures(s, stages, 0);
  EXPECT_DOUBLE_EQ(f.idle, 0.3);
  EXPECT_DOUBLE_EQ(f.descheduled, 0.05);
  EXPECT_DOUBLE_EQ(f.idle_sim, 1.0 / 3);
  EXPECT_DOUBLE_EQ(f.idle_replay, 1 - 19.0 / 32);
  stages[0].costs = stages[1].costs = ActionCosts{};
  EXPECT_DOUBLE_EQ(pipeline_figures(s, stages, 1).idle_sim, 0.25);

  StepStats step;
  record_pipeline(step, f);
  EXPECT_DOUBLE_EQ(step.pipeline_idle, 0.3);
  EXPECT_DOUBLE_EQ(step.pipeline_idle_sim, 1.0 / 3);
  EXPECT_DOUBLE_EQ(step.pipeline_idle_replay, 1 - 19.0 / 32);
  EXPECT_DOUBLE_EQ(step.pipeline_descheduled, 0.05);
}

}  // namespace
}  // namespace weft::train
