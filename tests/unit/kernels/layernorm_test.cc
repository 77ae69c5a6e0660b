#include "kernels/layernorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tests/unit/kernels/gradient_check.h"

namespace weft::kernels::cpu {
namespace {

const CpuContext kCpu(1);  // these tests check values, which no thread count changes

using testing::central_differences;
using testing::expect_all_near;
using testing::expect_gradient_near;
using testing::project;
using testing::random_vector;
using testing::sample_indices;

TEST(LayerNorm, HandComputedRow) {
  // x = [1, 2, 3, 4]: mean 2.5, biased variance 1.25, rstd = 1 / sqrt(1.25 + 1e-5).
  const float inp[] = {1, 2, 3, 4};
  const float weight[] = {1, 1, 2, 1};
  const float bias[] = {0, 0, 0, 0.5f};
  float out[4], mean, rstd;
  layernorm_forward(kCpu, out, &mean, &rstd, inp, weight, bias, 1, 1, 4);
  EXPECT_FLOAT_EQ(mean, 2.5f);
  EXPECT_FLOAT_EQ(rstd, 0.894423613312618f);
  EXPECT_FLOAT_EQ(out[0], -1.3416354199689269f);
  EXPECT_FLOAT_EQ(out[1], -0.447211806656309f);
  EXPECT_FLOAT_EQ(out[2], 2 * 0.447211806656309f);
  EXPECT_FLOAT_EQ(out[3], 1.3416354199689269f + 0.5f);
}

TEST(LayerNorm, ForwardMatchesDoubleReference) {
  std::mt19937 rng(11);
  const int B = 3, T = 5, C = 48;
  // A large common offset checks the two-pass variance (one pass would cancel).
  auto inp = random_vector(B * T * C, rng, 99.0f, 101.0f);
  auto weight = random_vector(C, rng);
  auto bias = random_vector(C, rng);
  std::vector<float> out(inp.size()), mean(B * T), rstd(B * T);
  layernorm_forward(kCpu, out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                    bias.data(), B, T, C);
  std::vector<double> want(out.size()), want_mean(B * T), want_rstd(B * T);
  for (int r = 0; r < B * T; r++) {
    double m = 0, var = 0;
    for (int c = 0; c < C; c++) m += inp[r * C + c];
    m /= C;
    for (int c = 0; c < C; c++) var += (inp[r * C + c] - m) * (inp[r * C + c] - m);
    var /= C;
    const double s = 1.0 / std::sqrt(var + 1e-5);
    for (int c = 0; c < C; c++) want[r * C + c] = (inp[r * C + c] - m) * s * weight[c] + bias[c];
    want_mean[r] = m;
    want_rstd[r] = s;
  }
  // Tolerance: x - mean loses the offset's ~7 significant bits (100 vs spread 1): 1e-4 abs.
  expect_all_near(out, want, 1e-4, 1e-4, "out");
  expect_all_near(mean, want_mean, 0, 1e-6, "mean");
  expect_all_near(rstd, want_rstd, 0, 1e-4, "rstd");
}

// Finite differences with h = 1e-2 on inputs of order 1: truncation h^2 |f'''| and f32 rounding
// ulp(out) / h both stay below about 2e-5 here (tolerance 1e-4 + 1e-4 rel).
TEST(LayerNorm, BackwardAccumulatesFiniteDifferenceGradients) {
  std::mt19937 rng(12);
  const int B = 2, T = 3, C = 8;
  auto inp = random_vector(B * T * C, rng, -2.0f, 2.0f);
  auto weight = random_vector(C, rng, 0.5f, 1.5f);
  auto bias = random_vector(C, rng);
  auto w = random_vector(inp.size(), rng);
  std::vector<float> out(inp.size()), mean(B * T), rstd(B * T);
  auto loss = [&] {
    layernorm_forward(kCpu, out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                      bias.data(), B, T, C);
    return project(out, w);
  };
  loss();  // mean and rstd for the backward
  const auto dinp0 = random_vector(inp.size(), rng);
  const auto dweight0 = random_vector(C, rng);
  const auto dbias0 = random_vector(C, rng);
  auto dinp = dinp0, dweight = dweight0, dbias = dbias0;
  layernorm_backward(kCpu, dinp.data(), dweight.data(), dbias.data(), w.data(), inp.data(),
                     weight.data(), mean.data(), rstd.data(), B, T, C);

  const float h = 1e-2f;
  auto ii = sample_indices(inp.size(), inp.size(), rng);
  expect_gradient_near(dinp, dinp0, ii, central_differences(inp, ii, h, loss), 1e-4, 1e-4, "dinp");
  auto wi = sample_indices(C, C, rng);
  expect_gradient_near(dweight, dweight0, wi, central_differences(weight, wi, h, loss), 1e-4, 1e-4,
                       "dweight");
  expect_gradient_near(dbias, dbias0, wi, central_differences(bias, wi, h, loss), 1e-4, 1e-4,
                       "dbias");
}

}  // namespace
}  // namespace weft::kernels::cpu
