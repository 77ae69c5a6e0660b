#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
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

// out[r, o] = sum_c inp[r, c] weight[o, c] + bias[o], in double.
std::vector<double> naive_matmul(const std::vector<float>& inp, const std::vector<float>& weight,
                                 const float* bias, int rows, int C, int OC) {
  std::vector<double> out(static_cast<size_t>(rows) * OC);
  for (int r = 0; r < rows; r++) {
    for (int o = 0; o < OC; o++) {
      double sum = bias != nullptr ? bias[o] : 0.0;
      for (int c = 0; c < C; c++) sum += static_cast<double>(inp[r * C + c]) * weight[o * C + c];
      out[r * OC + o] = sum;
    }
  }
  return out;
}

TEST(Matmul, ForwardMatchesNaiveProductWithAndWithoutBias) {
  std::mt19937 rng(1);
  struct Shape {
    int B, T, C, OC;
  };
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{3, 17, 40, 24}}) {
    const int rows = s.B * s.T;
    auto inp = random_vector(static_cast<size_t>(rows) * s.C, rng);
    auto weight = random_vector(static_cast<size_t>(s.OC) * s.C, rng);
    auto bias = random_vector(s.OC, rng);
    std::vector<float> out(static_cast<size_t>(rows) * s.OC, 99.0f);  // must be overwritten
    // Tolerance: f32 sums of up to 40 products of numbers in [-1, 1].
    matmul_forward(kCpu, out.data(), inp.data(), weight.data(), bias.data(), s.B, s.T, s.C, s.OC);
    expect_all_near(out, naive_matmul(inp, weight, bias.data(), rows, s.C, s.OC), 1e-5, 1e-5,
                    "with bias");
    std::fill(out.begin(), out.end(), 99.0f);
    matmul_forward(kCpu, out.data(), inp.data(), weight.data(), nullptr, s.B, s.T, s.C, s.OC);
    expect_all_near(out, naive_matmul(inp, weight, nullptr, rows, s.C, s.OC), 1e-5, 1e-5,
                    "without bias");
  }
}

TEST(Matmul, HandComputedTwoByTwo) {
  // [1 2; 3 4] @ [5 6; 7 8]^T + [10, 20] = [1*5+2*6+10, 1*7+2*8+20; 3*5+4*6+10, 3*7+4*8+20]
  const float inp[] = {1, 2, 3, 4};
  const float weight[] = {5, 6, 7, 8};
  const float bias[] = {10, 20};
  float out[4];
  matmul_forward(kCpu, out, inp, weight, bias, 1, 2, 2, 2);
  EXPECT_EQ(out[0], 27.0f);
  EXPECT_EQ(out[1], 43.0f);
  EXPECT_EQ(out[2], 49.0f);
  EXPECT_EQ(out[3], 73.0f);
}

// The product is linear in each argument, so the central difference is exact up to f32
// rounding of the outputs: about 1e-7 * |out| / h with h = 1e-2 (tolerance 1e-4 + 1e-4 rel).
TEST(Matmul, BackwardAccumulatesFiniteDifferenceGradients) {
  std::mt19937 rng(2);
  const int B = 2, T = 3, C = 5, OC = 7;
  const int rows = B * T;
  auto inp = random_vector(static_cast<size_t>(rows) * C, rng);
  auto weight = random_vector(static_cast<size_t>(OC) * C, rng);
  auto bias = random_vector(OC, rng);
  auto w = random_vector(static_cast<size_t>(rows) * OC, rng);  // dout
  std::vector<float> out(w.size());
  auto loss = [&] {
    matmul_forward(kCpu, out.data(), inp.data(), weight.data(), bias.data(), B, T, C, OC);
    return project(out, w);
  };
  // Start from non-zero gradients: the backward must add to them.
  const auto dinp0 = random_vector(inp.size(), rng);
  const auto dweight0 = random_vector(weight.size(), rng);
  const auto dbias0 = random_vector(bias.size(), rng);
  auto dinp = dinp0, dweight = dweight0, dbias = dbias0;
  matmul_backward(kCpu, dinp.data(), dweight.data(), dbias.data(), w.data(), inp.data(),
                  weight.data(), B, T, C, OC);

  const float h = 1e-2f;
  auto all_inp = sample_indices(inp.size(), inp.size(), rng);
  expect_gradient_near(dinp, dinp0, all_inp, central_differences(inp, all_inp, h, loss), 1e-4, 1e-4,
                       "dinp");
  auto all_weight = sample_indices(weight.size(), weight.size(), rng);
  expect_gradient_near(dweight, dweight0, all_weight,
                       central_differences(weight, all_weight, h, loss), 1e-4, 1e-4, "dweight");
  auto all_bias = sample_indices(bias.size(), bias.size(), rng);
  expect_gradient_near(dbias, dbias0, all_bias, central_differences(bias, all_bias, h, loss), 1e-4,
                       1e-4, "dbias");
}

TEST(Matmul, BackwardWithoutInputOrBiasGradientStillGivesWeightGradient) {
  std::mt19937 rng(3);
  const int B = 1, T = 4, C = 3, OC = 2;
  auto inp = random_vector(B * T * C, rng);
  auto weight = random_vector(OC * C, rng);
  auto dout = random_vector(B * T * OC, rng);
  std::vector<float> dinp(inp.size(), 0.0f), dweight_full(weight.size(), 0.0f), dbias(OC, 0.0f),
      dweight_only(weight.size(), 0.0f);
  matmul_backward(kCpu, dinp.data(), dweight_full.data(), dbias.data(), dout.data(), inp.data(),
                  weight.data(), B, T, C, OC);
  matmul_backward(kCpu, nullptr, dweight_only.data(), nullptr, dout.data(), inp.data(),
                  weight.data(), B, T, C, OC);
  EXPECT_EQ(dweight_only, dweight_full);
}

// A product on more threads gives the same values, and the call leaves OpenBLAS's
// process-wide count as it found it.
TEST(Matmul, RunsOnTheContextsThreadsAndRestoresTheBlasCount) {
  std::mt19937 rng(4);
  const int B = 4, T = 64, C = 96, OC = 128;
  auto inp = random_vector(static_cast<size_t>(B) * T * C, rng);
  auto weight = random_vector(static_cast<size_t>(OC) * C, rng);
  auto dout = random_vector(static_cast<size_t>(B) * T * OC, rng);
  BlasThreads caller(1);
  std::vector<float> one(dout.size()), two(dout.size());
  matmul_forward(kCpu, one.data(), inp.data(), weight.data(), nullptr, B, T, C, OC);
  matmul_forward(CpuContext(2), two.data(), inp.data(), weight.data(), nullptr, B, T, C, OC);
  EXPECT_EQ(blas_threads(), 1);
  expect_all_near(two, std::vector<double>(one.begin(), one.end()), 1e-5, 1e-5, "2 threads");
  std::vector<float> dweight(weight.size(), 0.0f);
  matmul_backward(CpuContext(2), nullptr, dweight.data(), nullptr, dout.data(), inp.data(),
                  weight.data(), B, T, C, OC);
  EXPECT_EQ(blas_threads(), 1);
}

TEST(Matmul, CoretypeUpgradeOnlyWhenOpenBlasRunsWithoutAvx512) {
  const std::string core = blas_core_name();
  EXPECT_NE(core, "");
  const char* upgrade = blas_coretype_upgrade();
  if (upgrade == nullptr) return;  // already on AVX-512 kernels, or the CPU has none
  EXPECT_STREQ(upgrade, "SkylakeX");
  EXPECT_NE(core, "SkylakeX");
  __builtin_cpu_init();
  EXPECT_TRUE(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"));
}

}  // namespace
}  // namespace weft::kernels::cpu
