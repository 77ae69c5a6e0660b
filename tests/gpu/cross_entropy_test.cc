// kernels::cuda::crossentropy_* against kernels::cpu::crossentropy_* on random logits, f32 and
// bf16, with padded rows (Vp > V).
#include "kernels/cuda/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cross_entropy.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;
using gpu_test::random_ints;
using gpu_test::representable;

template <typename T>
class CrossEntropyGpuTest : public gpu_test::KernelTest {};
TYPED_TEST_SUITE(CrossEntropyGpuTest, gpu_test::FloatTypes, gpu_test::FloatTypeNames);

struct Shape {
  int BT, V, Vp;
};
// A vocabulary smaller than a block, weft's byte vocabulary, and GPT-2's padded as llm.c pads it.
const Shape kShapes[] = {{6, 50, 64}, {9, 256, 256}, {3, 50257, 50304}};

TYPED_TEST(CrossEntropyGpuTest, ForwardAndBackwardMatchCpu) {
  using T = TypeParam;
  for (const Shape& s : kShapes) {
    const size_t n = size_t(s.BT) * s.Vp;
    // Padded columns hold junk: the kernels must ignore it.
    const auto logits = representable<T>(random_floats(n, 1, -4.0f, 4.0f));
    const auto targets = random_ints(s.BT, 2, 0, s.V - 1);
    std::vector<float> losses(s.BT), probs(n);
    const float mean =
        kernels::cpu::crossentropy_forward(gpu_test::kCpu, losses.data(), probs.data(),
                                           logits.data(), targets.data(), s.BT, s.V, s.Vp);

    auto d_logits = DeviceArray<T>::from_floats(logits);
    DeviceArray<int32_t> d_targets(targets);
    DeviceArray<T> d_probs(n);
    DeviceArray<float> d_losses(s.BT);
    kernels::cuda::crossentropy_forward(this->ctx(), d_losses.get(), d_probs.get(), d_logits.get(),
                                        d_targets.get(), s.BT, s.V, s.Vp);
    const std::string what = "crossentropy V=" + std::to_string(s.V);
    // Losses are f32 in both overloads, computed in f32 from the same logits.
    gpu_test::expect_close(d_losses.download(), losses, 1e-5f, 1e-5f, what + " losses");
    EXPECT_NEAR(kernels::cuda::mean_loss(this->ctx(), d_losses.get(), s.BT), mean,
                1e-5f * std::fabs(mean))
        << what;
    gpu_test::expect_close_as<T>(d_probs.to_floats(), probs, what + " probs");

    // In place, probs over the logits: the same result.
    kernels::cuda::crossentropy_forward(this->ctx(), d_losses.get(), d_logits.get(), d_logits.get(),
                                        d_targets.get(), s.BT, s.V, s.Vp);
    gpu_test::expect_close(d_losses.download(), losses, 1e-5f, 1e-5f, what + " losses in place");
    gpu_test::expect_close_as<T>(d_logits.to_floats(), probs, what + " probs in place");

    const float scale = 1.0f / s.BT;
    // dlogits starts as garbage: backward writes, it does not accumulate.
    auto d_dlogits = DeviceArray<T>::from_floats(random_floats(n, 3));
    std::vector<float> dlogits(n);
    kernels::cpu::crossentropy_backward(gpu_test::kCpu, dlogits.data(), probs.data(),
                                        targets.data(), scale, s.BT, s.V, s.Vp);
    auto d_probs_cpu = DeviceArray<T>::from_floats(probs);
    kernels::cuda::crossentropy_backward(this->ctx(), d_dlogits.get(), d_probs_cpu.get(),
                                         d_targets.get(), scale, s.BT, s.V, s.Vp);
    gpu_test::expect_close_as<T>(d_dlogits.to_floats(), dlogits, what + " dlogits");
  }
}

// Targets are not checked on the host; a bad one shows up as a NaN loss for its row only.
TYPED_TEST(CrossEntropyGpuTest, TargetOutsideVocabularyGivesNaNLoss) {
  using T = TypeParam;
  const int BT = 3, V = 10, Vp = 16;
  auto d_logits = DeviceArray<T>::from_floats(random_floats(size_t(BT) * Vp, 4));
  DeviceArray<int32_t> d_targets(std::vector<int32_t>{1, V, 2});
  DeviceArray<float> d_losses(BT);
  kernels::cuda::crossentropy_forward(this->ctx(), d_losses.get(), d_logits.get(), d_logits.get(),
                                      d_targets.get(), BT, V, Vp);
  const auto losses = d_losses.download();
  EXPECT_FALSE(std::isnan(losses[0]));
  EXPECT_TRUE(std::isnan(losses[1]));
  EXPECT_FALSE(std::isnan(losses[2]));
}

}  // namespace
}  // namespace weft
