#include "kernels/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/error.h"
#include "tests/unit/kernels/gradient_check.h"

namespace weft::kernels::cpu {
namespace {

const CpuContext kCpu(1);  // these tests check values, which no thread count changes

using testing::expect_all_near;
using testing::random_vector;

constexpr float kLr = 0.1f, kBeta1 = 0.9f, kBeta2 = 0.999f, kEps = 1e-8f, kDecay = 0.01f;

// v is compared with a 2e-5 relative tolerance: the f32 beta2 = 0.999f is 0.99900001, so the
// kernel's 1 - beta2 is 1.3e-5 below 0.001 (an f32 interface, like llm.c's and the CUDA one's).
TEST(AdamW, TwoHandComputedSteps) {
  float p = 1.0f, m = 0.0f, v = 0.0f;
  // Step 1, g = 0.5:  m = 0.1 * 0.5 = 0.05;  v = 0.001 * 0.25 = 0.00025;
  //   m_hat = 0.05 / (1 - 0.9) = 0.5;  v_hat = 0.00025 / (1 - 0.999) = 0.25;
  //   p = 1 - 0.1 * (0.5 / (sqrt(0.25) + 1e-8) + 0.01 * 1) = 0.899000002
  float g = 0.5f;
  adamw_update(kCpu, &p, &g, &m, &v, 1, kLr, kBeta1, kBeta2, kEps, kDecay, 1);
  EXPECT_FLOAT_EQ(m, 0.05f);
  EXPECT_NEAR(v, 0.00025f, 0.00025f * 2e-5f);
  EXPECT_FLOAT_EQ(p, 0.899000002f);
  // Step 2, g = -0.25:  m = 0.9 * 0.05 - 0.1 * 0.25 = 0.02;
  //   v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225;
  //   m_hat = 0.02 / (1 - 0.81) = 0.1052632;  v_hat = 0.00031225 / (1 - 0.998001) = 0.1562031;
  //   p = 0.899 - 0.1 * (0.1052632 / (0.3952253 + 1e-8) + 0.01 * 0.899) = 0.8714673
  g = -0.25f;
  adamw_update(kCpu, &p, &g, &m, &v, 1, kLr, kBeta1, kBeta2, kEps, kDecay, 2);
  EXPECT_FLOAT_EQ(m, 0.02f);
  EXPECT_NEAR(v, 0.00031225f, 0.00031225f * 2e-5f);
  EXPECT_FLOAT_EQ(p, 0.8714672987058464f);
}

TEST(AdamW, WeightDecayIsDecoupledFromTheMoments) {
  // With a zero gradient and zero moments the Adam term is 0 / (0 + eps) = 0, so only the
  // decay acts: p *= (1 - lr * wd). The moments see nothing of the decay.
  std::vector<float> p = {2.0f, -3.0f, 0.0f}, g(3, 0.0f), m(3, 0.0f), v(3, 0.0f);
  adamw_update(kCpu, p.data(), g.data(), m.data(), v.data(), 3, kLr, kBeta1, kBeta2, kEps, kDecay,
               1);
  EXPECT_FLOAT_EQ(p[0], 2.0f * (1 - kLr * kDecay));
  EXPECT_FLOAT_EQ(p[1], -3.0f * (1 - kLr * kDecay));
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_EQ(m, std::vector<float>(3, 0.0f));
  EXPECT_EQ(v, std::vector<float>(3, 0.0f));
}

// Five steps over 1000 elements (SIMD body and tail) against the same formulas in double; the
// f32 kernel drifts by a few ulp per step (tolerance 1e-6 abs + 1e-5 rel).
TEST(AdamW, StepsMatchDoubleReference) {
  std::mt19937 rng(71);
  const size_t n = 1000;
  auto p = random_vector(n, rng);
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  std::vector<double> rp(p.begin(), p.end()), rm(n, 0.0), rv(n, 0.0);
  const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  for (long t = 1; t <= 5; t++) {
    auto g = random_vector(n, rng, -0.1f, 0.1f);
    adamw_update(kCpu, p.data(), g.data(), m.data(), v.data(), n, static_cast<float>(lr),
                 static_cast<float>(b1), static_cast<float>(b2), static_cast<float>(eps),
                 static_cast<float>(wd), t);
    for (size_t i = 0; i < n; i++) {
      // The kernel gets the hyperparameters rounded to f32; so does the reference.
      const double fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
      rm[i] = fb1 * rm[i] + (1 - fb1) * g[i];
      rv[i] = fb2 * rv[i] + (1 - fb2) * g[i] * g[i];
      const double mh = rm[i] / (1 - std::pow(fb1, t)), vh = rv[i] / (1 - std::pow(fb2, t));
      rp[i] -= static_cast<float>(lr) *
               (mh / (std::sqrt(vh) + static_cast<float>(eps)) + static_cast<float>(wd) * rp[i]);
    }
  }
  expect_all_near(p, rp, 1e-6, 1e-5, "params");
  expect_all_near(m, rm, 1e-9, 1e-5, "m");
  expect_all_near(v, rv, 1e-12, 1e-5, "v");
}

// A range large enough to be split over the context's threads updates every element exactly as
// one thread does (the parts meet at element boundaries; nothing is summed across them).
TEST(AdamW, ThreadsSplitTheRangeWithoutChangingAnElement) {
  const size_t n = (size_t{1} << 18) * 3 + 7;
  std::vector<float> grads(n), one(n), three(n), m1(n, 0), v1(n, 0), m3(n, 0), v3(n, 0);
  std::mt19937 rng(4);
  std::normal_distribution<float> dist;
  for (size_t i = 0; i < n; i++) {
    grads[i] = dist(rng);
    one[i] = three[i] = dist(rng);
  }
  for (long t = 1; t <= 2; t++) {
    adamw_update(CpuContext(1), one.data(), grads.data(), m1.data(), v1.data(), n, kLr, kBeta1,
                 kBeta2, kEps, kDecay, t);
    adamw_update(CpuContext(3), three.data(), grads.data(), m3.data(), v3.data(), n, kLr, kBeta1,
                 kBeta2, kEps, kDecay, t);
  }
  EXPECT_EQ(one, three);
  EXPECT_EQ(m1, m3);
  EXPECT_EQ(v1, v3);
}

TEST(AdamW, StepZeroIsInvalidArgument) {
  float p = 1, g = 1, m = 0, v = 0;
  try {
    adamw_update(kCpu, &p, &g, &m, &v, 1, kLr, kBeta1, kBeta2, kEps, kDecay, 0);
    FAIL() << "t = 0 should be rejected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("t = 0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(p, 1.0f) << "nothing may change on error";
}

}  // namespace
}  // namespace weft::kernels::cpu
