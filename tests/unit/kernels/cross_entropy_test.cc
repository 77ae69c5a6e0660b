#include "kernels/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/error.h"
#include "tests/unit/kernels/gradient_check.h"

namespace weft::kernels::cpu {
namespace {

const CpuContext kCpu(1);  // these tests check values, which no thread count changes

using testing::central_differences;
using testing::expect_all_near;
using testing::expect_gradient_near;
using testing::random_vector;
using testing::sample_indices;

TEST(CrossEntropy, HandComputedRows) {
  // Row 0: logits log 1, log 2, log 3 -> probabilities 1/6, 2/6, 3/6; target 2 -> -log(1/2).
  // Row 1: equal logits -> uniform 1/3; target 0 -> log 3.
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), 5.0f, 5.0f, 5.0f};
  const int32_t targets[] = {2, 0};
  std::vector<float> probs(6), losses(2);
  const float mean =
      crossentropy_forward(kCpu, losses.data(), probs.data(), logits.data(), targets, 2, 3, 3);
  expect_all_near(probs, {1 / 6.0, 2 / 6.0, 3 / 6.0, 1 / 3.0, 1 / 3.0, 1 / 3.0}, 0, 1e-6, "probs");
  expect_all_near(losses, {std::log(2.0), std::log(3.0)}, 0, 1e-6, "losses");
  EXPECT_NEAR(mean, (std::log(2.0) + std::log(3.0)) / 2, 1e-6);
  // dlogits = (p - onehot) * scale with scale 0.5 (the mean over 2 rows).
  std::vector<float> dlogits(6);
  crossentropy_backward(kCpu, dlogits.data(), probs.data(), targets, 0.5f, 2, 3, 3);
  expect_all_near(
      dlogits, {0.5 / 6, 0.5 * 2 / 6, 0.5 * (3 / 6.0 - 1), 0.5 * (1 / 3.0 - 1), 0.5 / 3, 0.5 / 3},
      1e-8, 1e-6, "dlogits");
}

TEST(CrossEntropy, ForwardMatchesReferenceWithPaddedVocabularyAndInPlace) {
  std::mt19937 rng(41);
  const int BT = 7, V = 37, Vp = 48;
  auto logits = random_vector(static_cast<size_t>(BT) * Vp, rng, -5.0f, 5.0f);
  std::vector<int32_t> targets(BT);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % V);
  std::vector<double> want_probs(logits.size(), 0.0), want_losses(BT);
  double want_mean = 0;
  for (int i = 0; i < BT; i++) {
    double sum = 0;
    for (int j = 0; j < V; j++) sum += std::exp(static_cast<double>(logits[i * Vp + j]));
    for (int j = 0; j < V; j++) want_probs[i * Vp + j] = std::exp(logits[i * Vp + j]) / sum;
    want_losses[i] = std::log(sum) - logits[i * Vp + targets[i]];
    want_mean += want_losses[i] / BT;
  }
  std::vector<float> probs(logits.size(), 99.0f), losses(BT);
  const float mean = crossentropy_forward(kCpu, losses.data(), probs.data(), logits.data(),
                                          targets.data(), BT, V, Vp);
  // Tolerance: exp within 2 ulp, sums over 37 terms; padded columns must be exactly 0.
  expect_all_near(probs, want_probs, 0, 2e-6, "probs");
  expect_all_near(losses, want_losses, 1e-6, 1e-6, "losses");
  EXPECT_NEAR(mean, want_mean, 1e-6);

  std::vector<float> in_place = logits, in_place_losses(BT);
  crossentropy_forward(kCpu, in_place_losses.data(), in_place.data(), in_place.data(),
                       targets.data(), BT, V, Vp);
  EXPECT_EQ(in_place, probs);
  EXPECT_EQ(in_place_losses, losses);
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  // Without the max subtraction exp(1000) overflows; with it the loss is exact.
  const std::vector<float> logits = {1000.0f, 0.0f, -1000.0f, -1000.0f};
  const int32_t targets[] = {1};
  std::vector<float> probs(4), losses(1);
  const float mean =
      crossentropy_forward(kCpu, losses.data(), probs.data(), logits.data(), targets, 1, 4, 4);
  EXPECT_FLOAT_EQ(mean, 1000.0f);  // -log softmax = logsumexp - logit = 1000 - 0
  EXPECT_FLOAT_EQ(probs[0], 1.0f);
  EXPECT_EQ(probs[1], probs[1]) << "NaN";
  EXPECT_LT(probs[1], 1e-30f);
}

// The mean loss against central differences over every logit, h = 5e-2 on logits in [-3, 3]:
// the f32 rounding of the mean loss gives ulp(2.4) / 2h ~ 2.4e-6 of noise per probe, and the
// truncation error h^2 f''' / 6 is smaller still (tolerance 1e-5 + 1e-3 rel).
// Checks the padded columns too: their gradient is exactly 0.
TEST(CrossEntropy, BackwardMatchesFiniteDifferencesOfMeanLoss) {
  std::mt19937 rng(42);
  const int BT = 6, V = 11, Vp = 16;
  auto logits = random_vector(static_cast<size_t>(BT) * Vp, rng, -3.0f, 3.0f);
  std::vector<int32_t> targets(BT);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % V);
  std::vector<float> probs(logits.size()), losses(BT);
  auto loss = [&] {
    return static_cast<double>(crossentropy_forward(kCpu, losses.data(), probs.data(),
                                                    logits.data(), targets.data(), BT, V, Vp));
  };
  loss();
  std::vector<float> dlogits(logits.size(), 7.0f);  // written, not accumulated
  crossentropy_backward(kCpu, dlogits.data(), probs.data(), targets.data(), 1.0f / BT, BT, V, Vp);
  const std::vector<float> zeros(logits.size(), 0.0f);
  auto all = sample_indices(logits.size(), logits.size(), rng);
  expect_gradient_near(dlogits, zeros, all, central_differences(logits, all, 5e-2f, loss), 1e-5,
                       1e-3, "dlogits");
  for (int i = 0; i < BT; i++) {
    for (int j = V; j < Vp; j++) EXPECT_EQ(dlogits[i * Vp + j], 0.0f) << "padded column " << j;
  }
  // In place over probs gives the same numbers.
  crossentropy_backward(kCpu, probs.data(), probs.data(), targets.data(), 1.0f / BT, BT, V, Vp);
  EXPECT_EQ(probs, dlogits);
}

TEST(CrossEntropy, TargetOutsideVocabularyIsInvalidArgument) {
  const std::vector<float> logits(8, 0.0f);
  std::vector<float> probs(8), losses(2);
  for (int32_t bad : {-1, 4}) {
    const int32_t targets[] = {0, bad};
    try {
      crossentropy_forward(kCpu, losses.data(), probs.data(), logits.data(), targets, 2, 4, 4);
      FAIL() << "target " << bad << " should be rejected";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
    }
    EXPECT_THROW(crossentropy_backward(kCpu, probs.data(), probs.data(), targets, 1.0f, 2, 4, 4),
                 Error);
  }
}

}  // namespace
}  // namespace weft::kernels::cpu
