#include "train/lr_schedule.h"

#include <gtest/gtest.h>

namespace weft::train {
namespace {

TEST(LrSchedule, WarmsUpLinearlyThenDecaysByCosineToATenth) {
  LrSchedule s{.peak = 1e-3, .warmup = 10, .steps = 110};
  EXPECT_DOUBLE_EQ(s.at(1), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  // Halfway through the decay the cosine is at zero: the mean of peak and floor.
  EXPECT_NEAR(s.at(60), (1e-3 + 1e-4) / 2, 1e-12);
  EXPECT_NEAR(s.at(110), 1e-4, 1e-12);
  for (int t = 11; t <= 110; t++) EXPECT_LE(s.at(t), s.at(t - 1) + 1e-15) << t;
}

TEST(LrSchedule, NoWarmupStartsNearThePeak) {
  LrSchedule s{.peak = 2e-3, .warmup = 0, .steps = 10};
  EXPECT_GT(s.at(1), 0.95 * 2e-3);
  EXPECT_LT(s.at(1), 2e-3);
  EXPECT_NEAR(s.at(10), 2e-4, 1e-12);
}

}  // namespace
}  // namespace weft::train
