#include "kernels/residual.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tests/unit/kernels/gradient_check.h"

namespace weft::kernels::cpu {
namespace {

const CpuContext kCpu(1);  // these tests check values, which no thread count changes

using testing::central_differences;
using testing::expect_gradient_near;
using testing::project;
using testing::random_vector;
using testing::sample_indices;

TEST(Residual, ForwardAddsAndMayWriteInPlace) {
  const std::vector<float> a = {1, 2, 3, -4, 0.5f};
  std::vector<float> b = {10, 20, 30, 40, 0.25f};
  std::vector<float> out(a.size());
  residual_forward(kCpu, out.data(), a.data(), b.data(), a.size());
  EXPECT_EQ(out, (std::vector<float>{11, 22, 33, 36, 0.75f}));
  residual_forward(kCpu, b.data(), a.data(), b.data(), a.size());  // the residual stream in place
  EXPECT_EQ(b, out);
}

// out = a + b is linear: central differences with h = 1e-2 are exact up to f32 rounding of
// the sum (tolerance 1e-4 + 1e-4 rel). Sizes around the SIMD widths exercise the tails.
TEST(Residual, BackwardAccumulatesIntoBothInputs) {
  std::mt19937 rng(61);
  for (size_t n : {1, 15, 16, 17, 100}) {
    auto a = random_vector(n, rng), b = random_vector(n, rng), w = random_vector(n, rng);
    std::vector<float> out(n);
    auto loss = [&] {
      residual_forward(kCpu, out.data(), a.data(), b.data(), n);
      return project(out, w);
    };
    const auto da0 = random_vector(n, rng), db0 = random_vector(n, rng);
    auto da = da0, db = db0;
    residual_backward(kCpu, da.data(), db.data(), w.data(), n);
    auto all = sample_indices(n, n, rng);
    expect_gradient_near(da, da0, all, central_differences(a, all, 1e-2f, loss), 1e-4, 1e-4,
                         "da n=" + std::to_string(n));
    expect_gradient_near(db, db0, all, central_differences(b, all, 1e-2f, loss), 1e-4, 1e-4,
                         "db n=" + std::to_string(n));
  }
}

}  // namespace
}  // namespace weft::kernels::cpu
