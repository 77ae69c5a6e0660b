// kernels::cuda::embedding_* against kernels::cpu::embedding_* on random tokens, f32 and bf16.
#include "kernels/cuda/embedding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/embedding.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;
using gpu_test::random_ints;
using gpu_test::representable;

template <typename T>
class EmbeddingGpuTest : public gpu_test::KernelTest {};
TYPED_TEST_SUITE(EmbeddingGpuTest, gpu_test::FloatTypes, gpu_test::FloatTypeNames);

TYPED_TEST(EmbeddingGpuTest, ForwardAndBackwardMatchCpu) {
  using T = TypeParam;
  // A small vocabulary, so tokens repeat and their gradients must add up.
  const int B = 3, T_ = 11, C = 40, V = 7, max_T = 16;
  const auto tokens = random_ints(size_t(B) * T_, 1, 0, V - 1);
  const auto wte = representable<T>(random_floats(size_t(V) * C, 2));
  const auto wpe = representable<T>(random_floats(size_t(max_T) * C, 3));
  const size_t n = size_t(B) * T_ * C;
  std::vector<float> out(n);
  kernels::cpu::embedding_forward(gpu_test::kCpu, out.data(), tokens.data(), wte.data(), wpe.data(),
                                  B, T_, C, V);

  DeviceArray<int32_t> d_tokens(tokens);
  auto d_wte = DeviceArray<T>::from_floats(wte);
  auto d_wpe = DeviceArray<T>::from_floats(wpe);
  DeviceArray<T> d_out(n);
  kernels::cuda::embedding_forward(this->ctx(), d_out.get(), d_tokens.get(), d_wte.get(),
                                   d_wpe.get(), B, T_, C, V);
  gpu_test::expect_close_as<T>(d_out.to_floats(), out, "embedding_forward");

  const auto dout = representable<T>(random_floats(n, 4));
  auto dwte = representable<T>(random_floats(size_t(V) * C, 5));
  auto dwpe = representable<T>(random_floats(size_t(max_T) * C, 6));
  auto d_dwte = DeviceArray<T>::from_floats(dwte);
  auto d_dwpe = DeviceArray<T>::from_floats(dwpe);
  auto d_dout = DeviceArray<T>::from_floats(dout);
  kernels::cpu::embedding_backward(gpu_test::kCpu, dwte.data(), dwpe.data(), dout.data(),
                                   tokens.data(), B, T_, C, V);
  kernels::cuda::embedding_backward(this->ctx(), d_dwte.get(), d_dwpe.get(), d_dout.get(),
                                    d_tokens.get(), B, T_, C, V);
  // In bf16 every atomic add into dwte rounds: a token seen k times carries k roundings.
  gpu_test::expect_close_as<T>(d_dwte.to_floats(), dwte, "embedding_backward dwte", 2.0f);
  gpu_test::expect_close_as<T>(d_dwpe.to_floats(), dwpe, "embedding_backward dwpe");
}

TYPED_TEST(EmbeddingGpuTest, TokenOutsideVocabularyGivesNaNRow) {
  using T = TypeParam;
  const int B = 1, T_ = 3, C = 4, V = 5;
  DeviceArray<int32_t> d_tokens(std::vector<int32_t>{0, -1, 4});
  auto d_wte = DeviceArray<T>::from_floats(random_floats(size_t(V) * C, 7));
  auto d_wpe = DeviceArray<T>::from_floats(random_floats(size_t(T_) * C, 8));
  DeviceArray<T> d_out(size_t(B) * T_ * C);
  kernels::cuda::embedding_forward(this->ctx(), d_out.get(), d_tokens.get(), d_wte.get(),
                                   d_wpe.get(), B, T_, C, V);
  const auto out = d_out.to_floats();
  for (int c = 0; c < C; c++) {
    EXPECT_FALSE(std::isnan(out[c]));
    EXPECT_TRUE(std::isnan(out[C + c]));
    EXPECT_FALSE(std::isnan(out[2 * C + c]));
  }
}

}  // namespace
}  // namespace weft
