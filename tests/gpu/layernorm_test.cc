// kernels::cuda::layernorm_* against kernels::cpu::layernorm_* on random inputs, f32 and bf16.
#include "kernels/cuda/layernorm.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/layernorm.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;
using gpu_test::representable;

template <typename T>
class LayerNormGpuTest : public gpu_test::KernelTest {};
TYPED_TEST_SUITE(LayerNormGpuTest, gpu_test::FloatTypes, gpu_test::FloatTypeNames);

struct Shape {
  int B, T, C;
};
// Channels fewer than, not a multiple of, and many times a warp; rows beyond one block's
// warps and beyond one column-sum pass (32 rows).
const Shape kShapes[] = {{1, 3, 7}, {2, 3, 40}, {4, 17, 768}};

TYPED_TEST(LayerNormGpuTest, ForwardAndBackwardMatchCpu) {
  using T = TypeParam;
  for (const Shape& s : kShapes) {
    const size_t rows = size_t(s.B) * s.T, n = rows * s.C;
    // An offset mean, as real activations have: the two-pass variance must not cancel.
    const auto inp = representable<T>(random_floats(n, 1, 2.0f, 4.0f));
    const auto weight = representable<T>(random_floats(s.C, 2, 0.5f, 1.5f));
    const auto bias = representable<T>(random_floats(s.C, 3));
    std::vector<float> out(n), mean(rows), rstd(rows);
    kernels::cpu::layernorm_forward(gpu_test::kCpu, out.data(), mean.data(), rstd.data(),
                                    inp.data(), weight.data(), bias.data(), s.B, s.T, s.C);

    auto d_inp = DeviceArray<T>::from_floats(inp);
    auto d_weight = DeviceArray<T>::from_floats(weight);
    auto d_bias = DeviceArray<T>::from_floats(bias);
    DeviceArray<T> d_out(n);
    DeviceArray<float> d_mean(rows), d_rstd(rows);
    kernels::cuda::layernorm_forward(this->ctx(), d_out.get(), d_mean.get(), d_rstd.get(),
                                     d_inp.get(), d_weight.get(), d_bias.get(), s.B, s.T, s.C);
    const std::string what = "layernorm C=" + std::to_string(s.C);
    gpu_test::expect_close_as<T>(d_out.to_floats(), out, what + " out");
    // mean and rstd are f32 in both overloads, from the same (bf16-representable) inputs.
    gpu_test::expect_close(d_mean.download(), mean, 1e-5f, 1e-6f, what + " mean");
    gpu_test::expect_close(d_rstd.download(), rstd, 1e-4f, 1e-6f, what + " rstd");

    const auto dout = representable<T>(random_floats(n, 4));
    auto dinp = representable<T>(random_floats(n, 5));
    auto dweight = representable<T>(random_floats(s.C, 6));
    auto dbias = representable<T>(random_floats(s.C, 7));
    auto d_dinp = DeviceArray<T>::from_floats(dinp);
    auto d_dweight = DeviceArray<T>::from_floats(dweight);
    auto d_dbias = DeviceArray<T>::from_floats(dbias);
    auto d_dout = DeviceArray<T>::from_floats(dout);
    kernels::cpu::layernorm_backward(gpu_test::kCpu, dinp.data(), dweight.data(), dbias.data(),
                                     dout.data(), inp.data(), weight.data(), mean.data(),
                                     rstd.data(), s.B, s.T, s.C);
    // The CPU's mean and rstd, so that only the backward is compared.
    d_mean.upload(mean);
    d_rstd.upload(rstd);
    kernels::cuda::layernorm_backward(this->ctx(), d_dinp.get(), d_dweight.get(), d_dbias.get(),
                                      d_dout.get(), d_inp.get(), d_weight.get(), d_mean.get(),
                                      d_rstd.get(), s.B, s.T, s.C);
    gpu_test::expect_close_as<T>(d_dinp.to_floats(), dinp, what + " dinp");
    gpu_test::expect_close_as<T>(d_dweight.to_floats(), dweight, what + " dweight");
    gpu_test::expect_close_as<T>(d_dbias.to_floats(), dbias, what + " dbias");
  }
}

}  // namespace
}  // namespace weft
