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

// Two or more finite ticks, increasing, the first at or below lo and the last at or above hi.
void expect_covering_ticks(double lo, double hi, int target) {
  const std::vector<double> ticks = nice_ticks(lo, hi, target);
  ASSERT_GE(ticks.size(), 2u) << lo << " to " << hi;
  EXPECT_LE(ticks.size(), static_cast<size_t>(4 * target)) << lo << " to " << hi;
  for (double t : ticks) EXPECT_TRUE(std::isfinite(t)) << lo << " to " << hi;
  for (size_t i = 1; i < ticks.size(); i++) EXPECT_LT(ticks[i - 1], ticks[i]) << lo << " to " << hi;
  EXPECT_LE(ticks.front(), lo);
  EXPECT_GE(ticks.back(), hi);
}

// Past about 4.5e15 a unit around a value, or a sixth of a range of a few units, is below the
// values' precision: the spacing used to round to 0 and leave no ticks at all.
TEST(NiceTicks, HugeValuesAndConstantSeriesStillGetTicks) {
  expect_covering_ticks(1e16, 1e16, 6);
  expect_covering_ticks(1e16, 1e16 + 2, 6);
  expect_covering_ticks(-3e300, 1e300, 6);
  expect_covering_ticks(4.25, 4.25, 6);
  expect_covering_ticks(0, 0, 4);
  const std::vector<double> edge = nice_ticks(1.7e308, 1.7e308, 6);
  ASSERT_GE(edge.size(), 2u);
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

// Every coordinate and label of the picture is a finite number.
void expect_finite_svg(const std::string& svg) {
  EXPECT_EQ(count_of(svg, "nan"), 0);
  EXPECT_EQ(count_of(svg, "inf"), 0);
  EXPECT_EQ(count_of(svg, "</svg>"), 1);
}

TEST(LossPlot, AHugeLossAndAConstantLossStillMakeAPicture) {
  const std::string huge = loss_plot_svg({step(1, 1e16, 9000), step(2, 1e16, 9100)}, {});
  EXPECT_EQ(count_of(huge, "<polyline"), 2);
  expect_finite_svg(huge);
  const std::string constant =
      loss_plot_svg({step(1, 3.5, 9000), step(2, 3.5, 9000), step(3, 3.5, 9000)},
                    {EvalStats{3, 3.5, 33}});
  EXPECT_EQ(count_of(constant, "<polyline"), 3);
  expect_finite_svg(constant);
  const std::string one_step = loss_plot_svg({step(1, 1e16, 0)}, {});
  expect_finite_svg(one_step);
}

TEST(LossPlot, NoStepsStillMakesAPicture) {
  const std::string svg = loss_plot_svg({}, {});
  EXPECT_EQ(count_of(svg, "<polyline"), 0);
  EXPECT_EQ(count_of(svg, "no steps"), 1);
  EXPECT_EQ(count_of(svg, "</svg>"), 1);
}

}  // namespace
}  // namespace weft::train
