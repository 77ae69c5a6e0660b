// kernels::cuda::residual_* against kernels::cpu::residual_*, f32 and bf16.
#include "kernels/cuda/residual.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/residual.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;
using gpu_test::representable;

template <typename T>
class ResidualGpuTest : public gpu_test::KernelTest {};
TYPED_TEST_SUITE(ResidualGpuTest, gpu_test::FloatTypes, gpu_test::FloatTypeNames);

TYPED_TEST(ResidualGpuTest, ForwardAndBackwardMatchCpu) {
  using T = TypeParam;
  const size_t n = 70001;
  const auto a = representable<T>(random_floats(n, 1));
  const auto b = representable<T>(random_floats(n, 2));
  std::vector<float> out(n);
  kernels::cpu::residual_forward(gpu_test::kCpu, out.data(), a.data(), b.data(), n);
  auto d_a = DeviceArray<T>::from_floats(a);
  auto d_b = DeviceArray<T>::from_floats(b);
  DeviceArray<T> d_out(n);
  kernels::cuda::residual_forward(this->ctx(), d_out.get(), d_a.get(), d_b.get(), n);
  gpu_test::expect_close_as<T>(d_out.to_floats(), out, "residual_forward");

  // In place into a: out may alias an input.
  kernels::cuda::residual_forward(this->ctx(), d_a.get(), d_a.get(), d_b.get(), n);
  gpu_test::expect_close_as<T>(d_a.to_floats(), out, "residual_forward in place");

  const auto dout = representable<T>(random_floats(n, 3));
  auto da = representable<T>(random_floats(n, 4));
  auto db = representable<T>(random_floats(n, 5));
  auto d_da = DeviceArray<T>::from_floats(da);
  auto d_db = DeviceArray<T>::from_floats(db);
  auto d_dout = DeviceArray<T>::from_floats(dout);
  kernels::cpu::residual_backward(gpu_test::kCpu, da.data(), db.data(), dout.data(), n);
  kernels::cuda::residual_backward(this->ctx(), d_da.get(), d_db.get(), d_dout.get(), n);
  gpu_test::expect_close_as<T>(d_da.to_floats(), da, "residual_backward da");
  gpu_test::expect_close_as<T>(d_db.to_floats(), db, "residual_backward db");
}

}  // namespace
}  // namespace weft
