// kernels::cuda::attention_* against kernels::cpu::attention_* on random inputs, f32 and bf16.
#include "kernels/cuda/attention.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/attention.h"
#include "runtime/error.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;
using gpu_test::representable;

template <typename T>
class AttentionGpuTest : public gpu_test::KernelTest {};
TYPED_TEST_SUITE(AttentionGpuTest, gpu_test::FloatTypes, gpu_test::FloatTypeNames);

struct Shape {
  int B, T, C, NH;
};
// One position; a sequence longer than a warp and not a multiple of it; one head.
const Shape kShapes[] = {{2, 1, 8, 2}, {2, 33, 48, 4}, {1, 70, 16, 1}};

TYPED_TEST(AttentionGpuTest, ForwardAndBackwardMatchCpu) {
  using T = TypeParam;
  for (const Shape& s : kShapes) {
    const size_t qkv_n = size_t(s.B) * s.T * 3 * s.C, out_n = size_t(s.B) * s.T * s.C;
    const size_t att_n = size_t(s.B) * s.NH * s.T * s.T;
    const auto qkv = representable<T>(random_floats(qkv_n, 1, -2.0f, 2.0f));
    std::vector<float> out(out_n), att(att_n);
    kernels::cpu::attention_forward(gpu_test::kCpu, out.data(), att.data(), qkv.data(), s.B, s.T,
                                    s.C, s.NH);

    auto d_qkv = DeviceArray<T>::from_floats(qkv);
    DeviceArray<T> d_out(out_n), d_att(att_n);
    kernels::cuda::attention_forward(this->ctx(), d_out.get(), d_att.get(), d_qkv.get(), s.B, s.T,
                                     s.C, s.NH);
    const std::string what = "attention T=" + std::to_string(s.T) + " NH=" + std::to_string(s.NH);
    gpu_test::expect_close_as<T>(d_out.to_floats(), out, what + " out");
    // Probabilities, zeros above the diagonal included (the absolute part covers both).
    gpu_test::expect_close_as<T>(d_att.to_floats(), att, what + " att");

    const auto dout = representable<T>(random_floats(out_n, 2));
    auto dqkv = representable<T>(random_floats(qkv_n, 3));
    auto d_dqkv = DeviceArray<T>::from_floats(dqkv);
    auto d_dout = DeviceArray<T>::from_floats(dout);
    std::vector<float> datt(att_n);
    kernels::cpu::attention_backward(gpu_test::kCpu, dqkv.data(), datt.data(), dout.data(),
                                     qkv.data(), att.data(), s.B, s.T, s.C, s.NH);
    // Scratch full of garbage on entry: its contents must not matter.
    auto d_datt = DeviceArray<T>::from_floats(random_floats(att_n, 4, -1e3f, 1e3f));
    // The CPU's probabilities, so that only the backward is compared.
    auto d_att_cpu = DeviceArray<T>::from_floats(att);
    kernels::cuda::attention_backward(this->ctx(), d_dqkv.get(), d_datt.get(), d_dout.get(),
                                      d_qkv.get(), d_att_cpu.get(), s.B, s.T, s.C, s.NH);
    // bf16 rounds dP and dS to 8 bits of mantissa before two more products.
    gpu_test::expect_close_as<T>(d_dqkv.to_floats(), dqkv, what + " dqkv", 2.0f);
  }
}

class AttentionGpuErrors : public gpu_test::KernelTest {};

TEST_F(AttentionGpuErrors, HeadsNotDividingChannelsIsInvalidArgument) {
  // Checked on the host before anything is enqueued.
  try {
    kernels::cuda::attention_forward(ctx(), static_cast<float*>(nullptr), nullptr, nullptr, 1, 4,
                                     10, 3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("3 heads do not divide 10"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace weft
