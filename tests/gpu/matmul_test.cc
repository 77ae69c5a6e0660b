// kernels::cuda::matmul_* against kernels::cpu::matmul_* on random inputs, f32 and bf16.
#include "kernels/cuda/matmul.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/matmul.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;
using gpu_test::representable;

template <typename T>
class MatmulGpuTest : public gpu_test::KernelTest {};
TYPED_TEST_SUITE(MatmulGpuTest, gpu_test::FloatTypes, gpu_test::FloatTypeNames);

struct Shape {
  int B, T, C, OC;
};
// Round sizes, odd sizes (rows of 5 and 7 elements: cuBLASLt's vectorised kernels do not
// apply) and one large enough for a tiled GEMM.
const Shape kShapes[] = {{2, 5, 16, 24}, {1, 7, 5, 3}, {3, 33, 64, 48}};

TYPED_TEST(MatmulGpuTest, ForwardMatchesCpu) {
  using T = TypeParam;
  for (const Shape& s : kShapes) {
    for (bool with_bias : {true, false}) {
      const int BT = s.B * s.T;
      const auto inp = representable<T>(random_floats(size_t(BT) * s.C, 1));
      const auto weight = representable<T>(random_floats(size_t(s.OC) * s.C, 2));
      const auto bias = representable<T>(random_floats(s.OC, 3));
      std::vector<float> expected(size_t(BT) * s.OC);
      kernels::cpu::matmul_forward(gpu_test::kCpu, expected.data(), inp.data(), weight.data(),
                                   with_bias ? bias.data() : nullptr, s.B, s.T, s.C, s.OC);

      auto d_inp = DeviceArray<T>::from_floats(inp);
      auto d_weight = DeviceArray<T>::from_floats(weight);
      auto d_bias = DeviceArray<T>::from_floats(bias);
      DeviceArray<T> d_out(expected.size());
      kernels::cuda::matmul_forward(this->ctx(), d_out.get(), d_inp.get(), d_weight.get(),
                                    with_bias ? d_bias.get() : nullptr, s.B, s.T, s.C, s.OC);
      gpu_test::expect_close_as<T>(d_out.to_floats(), expected,
                                   "matmul_forward " + std::to_string(s.C) + "->" +
                                       std::to_string(s.OC) + (with_bias ? " with bias" : ""));
    }
  }
}

// A bias that is not 16-byte aligned takes the GEMM-then-add path instead of cuBLASLt's fused
// epilogue; the result must be the same.
TYPED_TEST(MatmulGpuTest, ForwardWithUnalignedBiasMatchesCpu) {
  using T = TypeParam;
  const Shape s{2, 4, 32, 16};
  const int BT = s.B * s.T;
  const auto inp = representable<T>(random_floats(size_t(BT) * s.C, 4));
  const auto weight = representable<T>(random_floats(size_t(s.OC) * s.C, 5));
  const auto bias_storage = representable<T>(random_floats(s.OC + 1, 6));
  std::vector<float> expected(size_t(BT) * s.OC);
  kernels::cpu::matmul_forward(gpu_test::kCpu, expected.data(), inp.data(), weight.data(),
                               bias_storage.data() + 1, s.B, s.T, s.C, s.OC);

  auto d_inp = DeviceArray<T>::from_floats(inp);
  auto d_weight = DeviceArray<T>::from_floats(weight);
  auto d_bias = DeviceArray<T>::from_floats(bias_storage);
  DeviceArray<T> d_out(expected.size());
  kernels::cuda::matmul_forward(this->ctx(), d_out.get(), d_inp.get(), d_weight.get(),
                                d_bias.get() + 1, s.B, s.T, s.C, s.OC);
  gpu_test::expect_close_as<T>(d_out.to_floats(), expected, "matmul_forward, bias at +1 element");
}

// Gradients start from random values: backward must add to them, not overwrite.
TYPED_TEST(MatmulGpuTest, BackwardAccumulatesLikeCpu) {
  using T = TypeParam;
  for (const Shape& s : kShapes) {
    for (bool with_dinp : {true, false}) {
      for (bool with_dbias : {true, false}) {
        const int BT = s.B * s.T;
        const auto dout = representable<T>(random_floats(size_t(BT) * s.OC, 7));
        const auto inp = representable<T>(random_floats(size_t(BT) * s.C, 8));
        const auto weight = representable<T>(random_floats(size_t(s.OC) * s.C, 9));
        auto dinp = representable<T>(random_floats(size_t(BT) * s.C, 10));
        auto dweight = representable<T>(random_floats(size_t(s.OC) * s.C, 11));
        auto dbias = representable<T>(random_floats(s.OC, 12));
        auto d_dinp = DeviceArray<T>::from_floats(dinp);
        auto d_dweight = DeviceArray<T>::from_floats(dweight);
        auto d_dbias = DeviceArray<T>::from_floats(dbias);
        kernels::cpu::matmul_backward(gpu_test::kCpu, with_dinp ? dinp.data() : nullptr,
                                      dweight.data(), with_dbias ? dbias.data() : nullptr,
                                      dout.data(), inp.data(), weight.data(), s.B, s.T, s.C, s.OC);

        auto d_dout = DeviceArray<T>::from_floats(dout);
        auto d_inp = DeviceArray<T>::from_floats(inp);
        auto d_weight = DeviceArray<T>::from_floats(weight);
        kernels::cuda::matmul_backward(this->ctx(), with_dinp ? d_dinp.get() : nullptr,
                                       d_dweight.get(), with_dbias ? d_dbias.get() : nullptr,
                                       d_dout.get(), d_inp.get(), d_weight.get(), s.B, s.T, s.C,
                                       s.OC);
        const std::string what = "matmul_backward " + std::to_string(s.C) + "->" +
                                 std::to_string(s.OC) + (with_dinp ? "" : " no dinp") +
                                 (with_dbias ? "" : " no dbias");
        gpu_test::expect_close_as<T>(d_dinp.to_floats(), dinp, what + ": dinp");
        gpu_test::expect_close_as<T>(d_dweight.to_floats(), dweight, what + ": dweight");
        gpu_test::expect_close_as<T>(d_dbias.to_floats(), dbias, what + ": dbias");
      }
    }
  }
}

}  // namespace
}  // namespace weft
