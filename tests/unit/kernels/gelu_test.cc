#include "kernels/gelu.h"

#include <gtest/gtest.h>

#include <cmath>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif
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

double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(Gelu, HandComputedValues) {
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated in double by hand.
  const std::vector<float> x = {0.0f, 1.0f, -1.0f, 3.0f, -3.0f, 0.5f};
  const std::vector<double> want = {0.0,
                                    0.8411919906082768,
                                    -0.15880800939172324,
                                    2.996362607918227,
                                    -0.0036373920817729943,
                                    0.34571400982514394};
  std::vector<float> out(x.size());
  gelu_forward(kCpu, out.data(), x.data(), x.size());
  expect_all_near(out, want, 1e-7, 1e-6, "gelu");
}

TEST(Gelu, ForwardMatchesTanhFormulaOverWideRangeAndInPlace) {
  // Includes large |x| where exp saturates: gelu -> x for x >> 0 and -> 0 for x << 0.
  std::vector<float> x;
  for (int i = -4000; i <= 4000; i++) x.push_back(i * 0.005f);
  for (float big : {-100.0f, -30.0f, 30.0f, 100.0f, 1e4f}) x.push_back(big);
  std::vector<double> want;
  for (float v : x) want.push_back(gelu_tanh(v));
  std::vector<float> out(x.size());
  gelu_forward(kCpu, out.data(), x.data(), x.size());
  // Tolerance: 2e-7 abs near 0 plus 1e-6 rel (exp is within 2 ulp, then one divide).
  expect_all_near(out, want, 2e-7, 1e-6, "out of place");
  gelu_forward(kCpu, x.data(), x.data(), x.size());
  EXPECT_EQ(x, out) << "in place must equal out of place";
}

// h = 1e-3 on an elementwise op: only one output moves per probe, so the noise is
// ulp(gelu(x)) / h ~ 1e-4 at |x| ~ 3 (tolerance 3e-4 + 1e-3 rel).
TEST(Gelu, BackwardAccumulatesFiniteDifferenceGradient) {
  std::mt19937 rng(21);
  auto inp = random_vector(300, rng, -4.0f, 4.0f);
  auto w = random_vector(inp.size(), rng);
  std::vector<float> out(inp.size());
  auto loss = [&] {
    gelu_forward(kCpu, out.data(), inp.data(), inp.size());
    return project(out, w);
  };
  const auto dinp0 = random_vector(inp.size(), rng);
  auto dinp = dinp0;
  gelu_backward(kCpu, dinp.data(), inp.data(), w.data(), inp.size());
  auto all = sample_indices(inp.size(), inp.size(), rng);
  expect_gradient_near(dinp, dinp0, all, central_differences(inp, all, 1e-3f, loss), 3e-4, 1e-3,
                       "dinp");
}

TEST(Gelu, BackwardMatchesAnalyticDerivativeAtHandPoints) {
  // d/dx gelu at 0 is exactly 0.5; far out it tends to 1 (x > 0) and 0 (x < 0).
  const std::vector<float> x = {0.0f, 20.0f, -20.0f};
  const std::vector<float> ones(x.size(), 1.0f);
  std::vector<float> d(x.size(), 0.0f);
  gelu_backward(kCpu, d.data(), x.data(), ones.data(), x.size());
  EXPECT_FLOAT_EQ(d[0], 0.5f);
  EXPECT_FLOAT_EQ(d[1], 1.0f);
  EXPECT_NEAR(d[2], 0.0f, 1e-30);
}

#if defined(__x86_64__)
// The kernels flush denormals to zero while they run (see cpu/vector_math.h) and must hand the
// caller's floating-point mode back unchanged: code after the call still sees denormals.
TEST(Gelu, DenormalFlushingEndsWithTheCall) {
  const unsigned before = _mm_getcsr();
  const std::vector<float> x = {-20.0f, -50.0f, 1.0f};
  const std::vector<float> ones(x.size(), 1.0f);
  std::vector<float> out(x.size()), d(x.size(), 0.0f);
  gelu_forward(kCpu, out.data(), x.data(), x.size());
  gelu_backward(kCpu, d.data(), x.data(), ones.data(), x.size());
  EXPECT_EQ(_mm_getcsr(), before);
  volatile float tiny = 1e-39f;  // a denormal
  EXPECT_GT(tiny * 0.5f, 0.0f);
}
#endif

}  // namespace
}  // namespace weft::kernels::cpu
