// The error a user gets when the GPU they asked for is not there: runs everywhere (label unit),
// on a machine without a GPU (where cuda:0 is missing) and with one (cuda:<count> is missing).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "comm/native_backend.h"
#include "comm/nccl/backends.h"
#include "comm/transport_setup.h"
#include "runtime/cuda_buffer.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_stream.h"
#include "runtime/error.h"
#include "runtime/world.h"

namespace weft {
namespace {

int missing_device() { return cuda_device_count(); }  // one past the last that exists

template <typename Fn>
void expect_unavailable_naming_device(Fn fn, const std::string& also) {
  std::string cuda = "cuda:" + std::to_string(missing_device());
  try {
    fn();
    FAIL() << "expected Unavailable for " << cuda;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable) << e.what();
    EXPECT_NE(std::string(e.what()).find(cuda), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(also), std::string::npos) << e.what();
  }
}

TEST(CudaUnavailable, CudaBufferOnAMissingDeviceSaysSo) {
  expect_unavailable_naming_device([] { CudaBuffer buffer(1024, missing_device()); },
                                   "CUDA_VISIBLE_DEVICES");
}

TEST(CudaUnavailable, StreamAndEventOnAMissingDeviceSaySo) {
  expect_unavailable_naming_device([] { CudaStream stream(missing_device()); }, "stream");
  expect_unavailable_naming_device([] { CudaEvent event(missing_device()); }, "event");
}

TEST(CudaUnavailable, NativeNcclBackendOnAMissingDeviceSaysSoBeforeTouchingTheStore) {
  World world;  // rank 0 of 1
  expect_unavailable_naming_device(
      [&] {
        comm::make_native_nccl_backend(world, nullptr, missing_device(),
                                       deadline_after(std::chrono::seconds(5)));
      },
      "rank 0: backend nccl");
}

TEST(CudaUnavailable, NcclTransportOnAMissingDeviceSaysSo) {
  comm::TransportSetup setup;
  setup.deadline = deadline_after(std::chrono::seconds(5));
  expect_unavailable_naming_device(
      [&] { comm::make_nccl_transport(setup, missing_device()); }, "rank 0: backend nccl-ring");
}

// The count is what the checks go by: every device below it is usable, the next one is refused
// (cuda:0 where there is no GPU: the count is 0 then, not an error).
TEST(CudaUnavailable, DeviceCountIsExactlyTheDevicesRequireCudaDeviceAccepts) {
  const int count = cuda_device_count();
  for (int device = 0; device < count; device++)
    EXPECT_NO_THROW(require_cuda_device(device, "the test")) << "cuda:" << device;
  expect_unavailable_naming_device([] { require_cuda_device(missing_device(), "the test"); },
                                   "the test needs cuda:");
}

}  // namespace
}  // namespace weft
