// kernels::cuda::gelu_* against kernels::cpu::gelu_* on random inputs, f32 and bf16.
#include "kernels/cuda/gelu.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/gelu.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;
using gpu_test::representable;

template <typename T>
class GeluGpuTest : public gpu_test::KernelTest {};
TYPED_TEST_SUITE(GeluGpuTest, gpu_test::FloatTypes, gpu_test::FloatTypeNames);

TYPED_TEST(GeluGpuTest, ForwardAndBackwardMatchCpu) {
  using T = TypeParam;
  const size_t n = 100003;  // not a multiple of any block
  // Both tails of the curve: large negative inputs exercise the exp overflow path.
  const auto inp = representable<T>(random_floats(n, 1, -12.0f, 6.0f));
  std::vector<float> out(n);
  kernels::cpu::gelu_forward(gpu_test::kCpu, out.data(), inp.data(), n);
  auto d_inp = DeviceArray<T>::from_floats(inp);
  DeviceArray<T> d_out(n);
  kernels::cuda::gelu_forward(this->ctx(), d_out.get(), d_inp.get(), n);
  // Judged element by element (the scale of the largest output would hide the small ones).
  gpu_test::expect_close(d_out.to_floats(), out, std::is_same_v<T, float> ? 1e-5f : 1e-2f, 1e-6f,
                         "gelu_forward");

  const auto dout = representable<T>(random_floats(n, 2));
  auto dinp = representable<T>(random_floats(n, 3));
  auto d_dinp = DeviceArray<T>::from_floats(dinp);
  auto d_dout = DeviceArray<T>::from_floats(dout);
  kernels::cpu::gelu_backward(gpu_test::kCpu, dinp.data(), inp.data(), dout.data(), n);
  kernels::cuda::gelu_backward(this->ctx(), d_dinp.get(), d_inp.get(), d_dout.get(), n);
  gpu_test::expect_close_as<T>(d_dinp.to_floats(), dinp, "gelu_backward");
}

TYPED_TEST(GeluGpuTest, ForwardInPlace) {
  using T = TypeParam;
  const size_t n = 1000;
  const auto inp = representable<T>(random_floats(n, 4, -4.0f, 4.0f));
  std::vector<float> out(n);
  kernels::cpu::gelu_forward(gpu_test::kCpu, out.data(), inp.data(), n);
  auto d = DeviceArray<T>::from_floats(inp);
  kernels::cuda::gelu_forward(this->ctx(), d.get(), d.get(), n);
  gpu_test::expect_close_as<T>(d.to_floats(), out, "gelu_forward in place");
}

}  // namespace
}  // namespace weft
