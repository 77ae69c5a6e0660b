#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/matmul.h"
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

struct Shape {
  int B, T, C, NH;
};

// The textbook computation in double, one (b, h, t) at a time: scores against keys 0..t, an
// explicit max-subtracted softmax, then the weighted sum of values. att gets the
// probabilities with zeros above the diagonal.
void naive_attention(std::vector<double>& out, std::vector<double>& att,
                     const std::vector<float>& qkv, Shape s) {
  const int hs = s.C / s.NH;
  out.assign(static_cast<size_t>(s.B) * s.T * s.C, 0.0);
  att.assign(static_cast<size_t>(s.B) * s.NH * s.T * s.T, 0.0);
  auto at = [&](int b, int t, int part, int h, int d) {
    return static_cast<double>(
        qkv[(static_cast<size_t>(b) * s.T + t) * 3 * s.C + part * s.C + h * hs + d]);
  };
  for (int b = 0; b < s.B; b++) {
    for (int h = 0; h < s.NH; h++) {
      for (int t = 0; t < s.T; t++) {
        std::vector<double> score(t + 1);
        double max = -INFINITY;
        for (int j = 0; j <= t; j++) {
          double dot = 0;
          for (int d = 0; d < hs; d++) dot += at(b, t, 0, h, d) * at(b, j, 1, h, d);
          score[j] = dot / std::sqrt(static_cast<double>(hs));
          max = std::max(max, score[j]);
        }
        double sum = 0;
        for (int j = 0; j <= t; j++) sum += (score[j] = std::exp(score[j] - max));
        double* p = &att[((static_cast<size_t>(b) * s.NH + h) * s.T + t) * s.T];
        for (int j = 0; j <= t; j++) p[j] = score[j] / sum;
        for (int d = 0; d < hs; d++) {
          double o = 0;
          for (int j = 0; j <= t; j++) o += p[j] * at(b, j, 2, h, d);
          out[(static_cast<size_t>(b) * s.T + t) * s.C + h * hs + d] = o;
        }
      }
    }
  }
}

// Shapes below, at and across the kernel's 64-row blocks, and heads of several widths.
const Shape kShapes[] = {
    {1, 1, 4, 1}, {2, 5, 8, 2}, {1, 64, 8, 2}, {2, 70, 12, 3}, {1, 130, 16, 2}};

TEST(Attention, ForwardMatchesNaiveSoftmaxAttention) {
  std::mt19937 rng(31);
  for (Shape s : kShapes) {
    // Inputs in [-2, 2] give peaked as well as flat softmax rows.
    auto qkv = random_vector(static_cast<size_t>(s.B) * s.T * 3 * s.C, rng, -2.0f, 2.0f);
    std::vector<float> out(static_cast<size_t>(s.B) * s.T * s.C);
    std::vector<float> att(static_cast<size_t>(s.B) * s.NH * s.T * s.T, 99.0f);
    attention_forward(kCpu, out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
    std::vector<double> want_out, want_att;
    naive_attention(want_out, want_att, qkv, s);
    const std::string where = "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) +
                              " C=" + std::to_string(s.C) + " NH=" + std::to_string(s.NH);
    // Tolerance: f32 dot products of length hs <= 8 and a softmax over <= 130 keys.
    expect_all_near(out, want_out, 2e-6, 2e-5, "out " + where);
    // Above the diagonal the reference holds exact zeros, and so must att.
    expect_all_near(att, want_att, 1e-7, 2e-5, "att " + where);
  }
}

TEST(Attention, OutputAtPositionTIgnoresLaterPositions) {
  std::mt19937 rng(32);
  const Shape s{1, 80, 8, 2};
  auto qkv = random_vector(static_cast<size_t>(s.T) * 3 * s.C, rng);
  std::vector<float> out(static_cast<size_t>(s.T) * s.C), att(s.NH * s.T * s.T);
  std::vector<float> out2 = out;
  attention_forward(kCpu, out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
  const int cut = 50;  // change every q, k, v at positions >= cut
  for (size_t i = static_cast<size_t>(cut) * 3 * s.C; i < qkv.size(); i++) qkv[i] += 1.0f;
  attention_forward(kCpu, out2.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
  for (int i = 0; i < cut * s.C; i++) ASSERT_EQ(out[i], out2[i]) << "element " << i;
}

// h = 1e-2 with inputs in [-1, 1]: truncation ~h^2 and the f32 noise of one probe (the outputs
// of the probed position and the later ones, summed against w) stay below about 5e-5
// (tolerance 2e-4 + 2e-4 rel). Large shapes probe 300 random elements of qkv.
TEST(Attention, BackwardAccumulatesFiniteDifferenceGradient) {
  std::mt19937 rng(33);
  for (Shape s : kShapes) {
    auto qkv = random_vector(static_cast<size_t>(s.B) * s.T * 3 * s.C, rng);
    auto w = random_vector(static_cast<size_t>(s.B) * s.T * s.C, rng);
    std::vector<float> out(w.size()), att(static_cast<size_t>(s.B) * s.NH * s.T * s.T);
    auto loss = [&] {
      attention_forward(kCpu, out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
      return project(out, w);
    };
    loss();  // att for the backward
    const auto dqkv0 = random_vector(qkv.size(), rng);
    auto dqkv = dqkv0;
    std::vector<float> datt(att.size(), 12345.0f);  // scratch: garbage on entry
    attention_backward(kCpu, dqkv.data(), datt.data(), w.data(), qkv.data(), att.data(), s.B, s.T,
                       s.C, s.NH);
    auto probe = sample_indices(qkv.size(), 300, rng);
    const std::string where = "dqkv B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) +
                              " C=" + std::to_string(s.C) + " NH=" + std::to_string(s.NH);
    expect_gradient_near(dqkv, dqkv0, probe, central_differences(qkv, probe, 1e-2f, loss), 2e-4,
                         2e-4, where);
  }
}

// The (batch, head) pairs run on up to the context's threads; every pair is computed the same
// way on whichever thread, so 1, 2 and 3 threads give bit-identical results, and OpenBLAS's
// process-wide thread count, lowered to 1 inside the calls, is back as the caller had it. The
// shape is large enough (about 60 MFLOP) for the kernel to use all three threads.
TEST(Attention, ThreadCountChangesNothingAndBlasCountIsRestored) {
  std::mt19937 rng(34);
  const Shape s{6, 160, 192, 3};
  auto qkv = random_vector(static_cast<size_t>(s.B) * s.T * 3 * s.C, rng);
  auto dout = random_vector(static_cast<size_t>(s.B) * s.T * s.C, rng);
  BlasThreads caller(2);
  std::vector<float> want_out, want_att, want_dqkv;
  for (int threads : {1, 2, 3}) {
    const CpuContext ctx(threads);
    std::vector<float> out(dout.size()), att(static_cast<size_t>(s.B) * s.NH * s.T * s.T);
    std::vector<float> dqkv(qkv.size(), 0.0f), datt(att.size());
    attention_forward(ctx, out.data(), att.data(), qkv.data(), s.B, s.T, s.C, s.NH);
    attention_backward(ctx, dqkv.data(), datt.data(), dout.data(), qkv.data(), att.data(), s.B, s.T,
                       s.C, s.NH);
    EXPECT_EQ(blas_threads(), 2);
    if (threads == 1) {
      want_out = out, want_att = att, want_dqkv = dqkv;
      continue;
    }
    EXPECT_EQ(out, want_out) << threads << " threads";
    EXPECT_EQ(att, want_att) << threads << " threads";
    EXPECT_EQ(dqkv, want_dqkv) << threads << " threads";
  }
}

}  // namespace
}  // namespace weft::kernels::cpu
