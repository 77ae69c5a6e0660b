#pragma once
// Helpers for the kernel tests: random inputs, central finite differences, and a comparison
// that reports the worst element rather than flooding the log.
//
// A backward kernel is checked like this: pick a random projection w of the forward's output,
// so that L(x) = sum_i w_i out_i(x) is a scalar; then dL/dx from the backward (called with
// dout = w) must equal the central difference (L(x + h e_j) - L(x - h e_j)) / 2h for each input
// element j. L is summed in double; the forward itself runs in f32, so the difference carries
// f32 rounding of about ulp(out) / h, which sets each test's tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace weft::kernels::testing {

inline std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// sum_i w_i out_i in double: the scalar whose gradient the backward computes when given
// dout = w.
inline double project(const std::vector<float>& out, const std::vector<float>& w) {
  double sum = 0.0;
  for (size_t i = 0; i < out.size(); i++) sum += static_cast<double>(out[i]) * w[i];
  return sum;
}

// All indices 0..n-1, or `count` distinct random ones when n is larger (big shapes would make
// a full finite-difference sweep slow without testing anything new).
inline std::vector<size_t> sample_indices(size_t n, size_t count, std::mt19937& rng) {
  std::vector<size_t> all(n);
  std::iota(all.begin(), all.end(), size_t{0});
  if (n <= count) return all;
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(count);
  std::sort(all.begin(), all.end());
  return all;
}

// Central differences of loss() w.r.t. x[j] for each j in `indices`. x is perturbed in place
// and restored. The step actually taken is (x + h) - (x - h) as rounded to f32.
template <typename Loss>
std::vector<double> central_differences(std::vector<float>& x, const std::vector<size_t>& indices,
                                        float h, Loss&& loss) {
  std::vector<double> grad;
  grad.reserve(indices.size());
  for (size_t j : indices) {
    const float saved = x[j];
    const float plus = saved + h;
    const float minus = saved - h;
    x[j] = plus;
    const double l_plus = loss();
    x[j] = minus;
    const double l_minus = loss();
    x[j] = saved;
    grad.push_back((l_plus - l_minus) / (static_cast<double>(plus) - minus));
  }
  return grad;
}

// Checks |actual[j] - expected[k]| <= atol + rtol |expected[k]| for j = indices[k], where
// actual is (gradient after backward) - (gradient before backward): the kernels accumulate,
// so the tests start from non-zero gradients and look at the increment.
inline void expect_gradient_near(const std::vector<float>& after, const std::vector<float>& before,
                                 const std::vector<size_t>& indices,
                                 const std::vector<double>& expected, double atol, double rtol,
                                 const std::string& what) {
  ASSERT_EQ(indices.size(), expected.size());
  size_t failures = 0;
  double worst = 0.0;
  size_t worst_index = 0;
  for (size_t k = 0; k < indices.size(); k++) {
    const size_t j = indices[k];
    const double got = static_cast<double>(after[j]) - before[j];
    const double err = std::abs(got - expected[k]);
    const double excess = err == 0.0 ? 0.0 : err / (atol + rtol * std::abs(expected[k]));
    if (excess > worst) {
      worst = excess;
      worst_index = k;
    }
    if (excess > 1.0) failures++;
  }
  const size_t j = indices[worst_index];
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " of " << indices.size()
                          << " elements outside atol " << atol << " + rtol " << rtol
                          << "; worst at [" << j << "]: backward "
                          << static_cast<double>(after[j]) - before[j] << ", finite difference "
                          << expected[worst_index];
}

// Elementwise |got - want| <= atol + rtol |want|, reporting the worst element.
inline void expect_all_near(const std::vector<float>& got, const std::vector<double>& want,
                            double atol, double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t failures = 0;
  double worst = 0.0;
  size_t worst_index = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double err = std::abs(got[i] - want[i]);
    const double excess = err == 0.0 ? 0.0 : err / (atol + rtol * std::abs(want[i]));
    if (!(excess <= 1.0)) failures++;  // also catches NaN
    if (excess > worst || std::isnan(excess)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      worst_index = i;
    }
  }
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " of " << got.size()
                          << " elements outside atol " << atol << " + rtol " << rtol
                          << "; worst at [" << worst_index << "]: got " << got[worst_index]
                          << ", want " << want[worst_index];
}

}  // namespace weft::kernels::testing
