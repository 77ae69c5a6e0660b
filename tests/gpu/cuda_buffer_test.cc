// CudaBuffer and PinnedBuffer: round trips through the device, views, moves.
#include "runtime/cuda_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "runtime/cuda_stream.h"
#include "runtime/error.h"
#include "runtime/pinned_buffer.h"
#include "tests/gpu/gpu_test_support.h"

namespace weft {
namespace {

class CudaBufferTest : public gpu_test::GpuTest {};

TEST_F(CudaBufferTest, FreshBufferIsZeroAndRoundTripsBytes) {
  const size_t n = 100003;  // not a multiple of anything
  CudaBuffer buffer(n * sizeof(int32_t), 0);
  std::vector<int32_t> back(n, -1);
  buffer.download(back.data(), n * sizeof(int32_t));
  EXPECT_EQ(std::count(back.begin(), back.end(), 0), static_cast<long>(n));
  std::vector<int32_t> data(n);
  std::iota(data.begin(), data.end(), -50);
  buffer.upload(data.data(), n * sizeof(int32_t));
  buffer.download(back.data(), n * sizeof(int32_t));
  EXPECT_EQ(back, data);
}

TEST_F(CudaBufferTest, ViewsAreCudaTensorsAndRefuseToOverrun) {
  CudaBuffer buffer(64, 0);
  Tensor t = buffer.view(DType::f32, 16);
  EXPECT_EQ(t.device(), Device::cuda(0));
  EXPECT_EQ(t.data(), buffer.data());
  EXPECT_EQ(t.numel(), 16u);
  EXPECT_THROW(buffer.view(DType::f32, 17), Error);
  std::vector<char> big(65);
  EXPECT_THROW(buffer.upload(big.data(), big.size()), Error);
}

TEST_F(CudaBufferTest, MoveTransfersOwnership) {
  CudaBuffer a(256, 0);
  void* p = a.data();
  CudaBuffer b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  a = std::move(b);
  EXPECT_EQ(a.data(), p);
  CudaBuffer empty(0, 0);
  EXPECT_EQ(empty.data(), nullptr);
}

TEST_F(CudaBufferTest, PinnedBufferStagesAsyncCopies) {
  const size_t n = 4099;
  const size_t bytes = n * sizeof(float);
  PinnedBuffer out(bytes, 0), back(bytes, 0);
  EXPECT_TRUE(out.view(DType::f32, n).device().is_cpu());
  auto* values = static_cast<float*>(out.data());
  for (size_t i = 0; i < n; i++) values[i] = 0.5f * static_cast<float>(i);
  CudaBuffer device(bytes, 0);
  CudaStream stream(0);
  CudaEvent done(0);
  ASSERT_EQ(cudaMemcpyAsync(device.data(), out.data(), bytes, cudaMemcpyHostToDevice,
                            stream.get()),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(back.data(), device.data(), bytes, cudaMemcpyDeviceToHost,
                            stream.get()),
            cudaSuccess);
  done.record(stream);
  while (!done.query("round trip")) std::this_thread::sleep_for(std::chrono::microseconds(50));
  EXPECT_EQ(std::memcmp(out.data(), back.data(), bytes), 0);
}

}  // namespace
}  // namespace weft
