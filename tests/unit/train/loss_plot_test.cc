#include "train/loss_plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace weft::train {
namespace {

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) n++;
  return n;
}

TEST(NiceTicks, AreRoundAndCoverTheRange) {
  EXPECT_EQ(nice_ticks(4.03, 5.55, 6), (std::vector<double>{4.0, 4.5, 5.0, 5.5, 6.0}));
  EXPECT_EQ(nice_ticks(1, 200, 8), (std::vector<double>{0, 50, 100, 150, 200}));
  EXPECT_EQ(nice_ticks(0, 13000, 4), (std::vector<double>{0, 5000, 10000, 15000}));
  const std::vector<double> one = nice_ticks(3, 3, 5);  // a single value: a unit around it
  ASSERT_GT(one.size(), 1u);
  EXPECT_LE(one.front(), 3);
  EXPECT_GE(one.back(), 3);
}

StepStats step(int n, double loss, double rate) {
  StepStats s;
  s.step = n;
  s.loss = loss;
  s.tokens_per_s = rate;
  return s;
}

TEST(LossPlot, DrawsACurvePerSeriesAndLeavesOutNonFiniteValues) {
  const std::vector<StepStats> steps = {step(1, 5.5, 9000), step(2, 5.0, 12000),
                                        step(3, std::numeric_limits<double>::quiet_NaN(), 13000),
                                        step(4, 4.2, 12500)};
  const std::string without_eval = loss_plot_svg(steps, {});
  EXPECT_EQ(count_of(without_eval, "<polyline"), 2);  // loss, tokens/s
  EXPECT_EQ(count_of(without_eval, "held-out"), 0);
  EXPECT_EQ(count_of(without_eval, "nan"), 0);
  EXPECT_EQ(count_of(without_eval, "steps 1 to 4"), 1);
  EXPECT_EQ(count_of(without_eval, ">15k<"), 1);  // the throughput axis's top tick

  const std::string with_eval =
      loss_plot_svg(steps, {EvalStats{2, 5.1, 164}, EvalStats{4, 4.4, 81}});
  EXPECT_EQ(count_of(with_eval, "<polyline"), 3);
  EXPECT_EQ(count_of(with_eval, "held-out loss"), 1);
  EXPECT_EQ(with_eval.rfind("</svg>\n"), with_eval.size() - 7);
}

TEST(LossPlot, NoStepsStillMakesAPicture) {
  const std::string svg = loss_plot_svg({}, {});
  EXPECT_EQ(count_of(svg, "<polyline"), 0);
  EXPECT_EQ(count_of(svg, "no steps"), 1);
  EXPECT_EQ(count_of(svg, "</svg>"), 1);
}

}  // namespace
}  // namespace weft::train
