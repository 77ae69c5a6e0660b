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

// A stream that does not finish fails its waiter at the deadline (Timeout) instead of blocking
// it as cudaStreamSynchronize did; work that finishes in time is simply waited for. A host
// function holds the stream busy, so no kernel needs to hang.
TEST_F(CudaBufferTest, StreamWaitGivesUpAtItsDeadline) {
  using namespace std::chrono_literals;
  CudaStream stream(0);
  auto hold = [](void* seconds) {
    std::this_thread::sleep_for(std::chrono::duration<double>(*static_cast<double*>(seconds)));
  };
  double long_hold = 3.0, short_hold = 0.05;
  ASSERT_EQ(cudaLaunchHostFunc(stream.get(), hold, &long_hold), cudaSuccess);
  Clock::time_point start = Clock::now();
  try {
    stream.wait(Clock::now() + 300ms, "a test's held stream");
    FAIL() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout);
    EXPECT_NE(std::string(e.what()).find("a test's held stream on cuda:0"), std::string::npos)
        << e.what();
  }
  EXPECT_LT(seconds_since(start), 2.0);
  stream.wait(Clock::now() + 30s, "the rest of the hold");  // it does end
  ASSERT_EQ(cudaLaunchHostFunc(stream.get(), hold, &short_hold), cudaSuccess);
  EXPECT_NO_THROW(stream.wait(Clock::now() + 30s, "a short hold"));
}

}  // namespace
}  // namespace weft
