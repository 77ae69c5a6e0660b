// kernels::cuda::adamw_update against kernels::cpu::adamw_update: f32, and the mixed-precision
// overloads (f32 master weights and moments, a bf16 copy of the parameters written alongside).
#include "kernels/cuda/adamw.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/adamw.h"
#include "runtime/error.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;

constexpr float kLr = 1e-3f, kBeta1 = 0.9f, kBeta2 = 0.95f, kEps = 1e-8f, kDecay = 0.1f;

class AdamWGpuTest : public gpu_test::KernelTest {};

TEST_F(AdamWGpuTest, F32MatchesCpuOverSeveralSteps) {
  const size_t n = 10007;
  auto params = random_floats(n, 1);
  auto m = random_floats(n, 2, -1e-2f, 1e-2f);
  auto v = random_floats(n, 3, 0.0f, 1e-3f);
  DeviceArray<float> d_params(params), d_m(m), d_v(v);
  for (long t = 1; t <= 3; t++) {
    const auto grads = random_floats(n, 10 + t);
    DeviceArray<float> d_grads(grads);
    kernels::cpu::adamw_update(gpu_test::kCpu, params.data(), grads.data(), m.data(), v.data(), n,
                               kLr, kBeta1, kBeta2, kEps, kDecay, t);
    kernels::cuda::adamw_update(ctx(), d_params.get(), d_grads.get(), d_m.get(), d_v.get(), n, kLr,
                                kBeta1, kBeta2, kEps, kDecay, t);
    ASSERT_EQ(cudaStreamSynchronize(stream()), cudaSuccess);
  }
  gpu_test::expect_close(d_params.download(), params, 1e-6f, 1e-7f, "params");
  gpu_test::expect_close(d_m.download(), m, 1e-6f, 2e-8f, "m");
  gpu_test::expect_close(d_v.download(), v, 1e-6f, 1e-9f, "v");
}

// The master weights follow the f32 update exactly (given the grads as bf16 holds them); the
// bf16 copy is the master weights rounded to nearest even.
TEST_F(AdamWGpuTest, MixedPrecisionKeepsF32MasterAndWritesBf16Copy) {
  const size_t n = 5003;
  for (bool bf16_grads : {true, false}) {
    auto master = random_floats(n, 4);
    auto m = random_floats(n, 5, -1e-2f, 1e-2f);
    auto v = random_floats(n, 6, 0.0f, 1e-3f);
    const auto grads =
        bf16_grads ? gpu_test::round_to_bf16(random_floats(n, 7)) : random_floats(n, 7);
    DeviceArray<float> d_master(master), d_m(m), d_v(v);
    DeviceArray<__nv_bfloat16> d_params(n);
    kernels::cpu::adamw_update(gpu_test::kCpu, master.data(), grads.data(), m.data(), v.data(), n,
                               kLr, kBeta1, kBeta2, kEps, kDecay, 5);
    if (bf16_grads) {
      auto d_grads = DeviceArray<__nv_bfloat16>::from_floats(grads);
      kernels::cuda::adamw_update(ctx(), d_master.get(), d_params.get(), d_grads.get(), d_m.get(),
                                  d_v.get(), n, kLr, kBeta1, kBeta2, kEps, kDecay, 5);
    } else {
      DeviceArray<float> d_grads(grads);
      kernels::cuda::adamw_update(ctx(), d_master.get(), d_params.get(), d_grads.get(), d_m.get(),
                                  d_v.get(), n, kLr, kBeta1, kBeta2, kEps, kDecay, 5);
    }
    const auto gpu_master = d_master.download();
    const std::string what = bf16_grads ? "bf16 grads" : "f32 grads";
    gpu_test::expect_close(gpu_master, master, 1e-6f, 1e-7f, what + ": master");
    gpu_test::expect_close(d_m.download(), m, 1e-6f, 2e-8f, what + ": m");
    EXPECT_TRUE(d_params.to_floats() == gpu_test::round_to_bf16(gpu_master))
        << what << ": the bf16 copy is not the rounded master weights";
  }
}

TEST_F(AdamWGpuTest, StepZeroIsInvalidArgument) {
  // Checked on the host before anything is enqueued.
  try {
    kernels::cuda::adamw_update(ctx(), nullptr, static_cast<const float*>(nullptr), nullptr,
                                nullptr, 4, kLr, kBeta1, kBeta2, kEps, kDecay, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("t = 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace weft
