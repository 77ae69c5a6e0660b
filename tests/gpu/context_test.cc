// kernels::cuda::CudaContext: made by its caller, one per stream, and the only place the kernels
// find their stream and cuBLAS handles. Two contexts on two streams, driven from two threads at
// once, compute what the CPU does; a context for a device that is not there says so.
#include "kernels/cuda/context.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/matmul.h"
#include "kernels/matmul.h"
#include "runtime/cuda_device.h"
#include "runtime/error.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;
using gpu_test::random_floats;

// No device needed: one past the last device is missing everywhere.
TEST(CudaContextErrors, MissingDeviceIsUnavailable) {
  const int missing = cuda_device_count();
  try {
    kernels::cuda::CudaContext ctx(missing, nullptr);
    FAIL() << "expected Unavailable for cuda:" << missing;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:" + std::to_string(missing)), std::string::npos)
        << e.what();
  }
}

class CudaContextTest : public gpu_test::KernelTest {};

// Each thread owns a stream and a context on it (handles and workspace of its own), as two
// trainers or a trainer and an evaluator would; their GEMMs overlap on the device.
TEST_F(CudaContextTest, ContextsOnTwoStreamsRunAtOnce) {
  const int B = 4, T = 64, C = 96, OC = 128;
  const auto inp = random_floats(static_cast<size_t>(B) * T * C, 1);
  const auto weight = random_floats(static_cast<size_t>(OC) * C, 2);
  const auto bias = random_floats(OC, 3);
  std::vector<float> expected(static_cast<size_t>(B) * T * OC);
  kernels::cpu::matmul_forward(gpu_test::kCpu, expected.data(), inp.data(), weight.data(),
                               bias.data(), B, T, C, OC);
  auto d_inp = DeviceArray<float>::from_floats(inp);
  auto d_weight = DeviceArray<float>::from_floats(weight);
  auto d_bias = DeviceArray<float>::from_floats(bias);
  DeviceArray<float> out_a(expected.size()), out_b(expected.size());

  auto run = [&](float* out, bool* ok) {
    cudaStream_t stream = nullptr;
    *ok = cudaSetDevice(0) == cudaSuccess &&
          cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess;
    if (!*ok) return;
    try {  // an exception must not leave the thread
      kernels::cuda::CudaContext ctx(0, stream);
      for (int i = 0; i < 20; i++)
        kernels::cuda::matmul_forward(ctx, out, d_inp.get(), d_weight.get(), d_bias.get(), B, T, C,
                                      OC);
      *ok = cudaStreamSynchronize(stream) == cudaSuccess;
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
      *ok = false;
    }
    cudaStreamDestroy(stream);
  };
  bool ok_a = false, ok_b = false;
  { std::jthread a(run, out_a.get(), &ok_a), b(run, out_b.get(), &ok_b); }
  ASSERT_TRUE(ok_a && ok_b);
  gpu_test::expect_close_as<float>(out_a.to_floats(), expected, "stream a");
  gpu_test::expect_close_as<float>(out_b.to_floats(), expected, "stream b");
}

}  // namespace
}  // namespace weft
