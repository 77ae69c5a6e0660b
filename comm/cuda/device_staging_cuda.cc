// DeviceStaging on a GPU: two pinned host areas and one stream of the staging's own, so the
// copies run asynchronously (pageable memory would make every copy synchronous) and in order.
#include <cuda_runtime_api.h>

#include <string>

#include "comm/device_staging.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_stream.h"
#include "runtime/pinned_buffer.h"

namespace weft::comm {
namespace {

class CudaStaging final : public DeviceStaging {
 public:
  explicit CudaStaging(int device) : device_(device) {
    require_cuda_device(device, "staging CUDA tensors for a host backend");
    stream_ = CudaStream(device);
  }

  std::byte* host(int which, size_t bytes, Deadline deadline) override {
    PinnedBuffer& b = areas_[which];
    if (b.size() < bytes) {
      wait(deadline);  // queued copies may still use the old area
      b = PinnedBuffer(bytes, device_);
    }
    return static_cast<std::byte*>(b.data());
  }

  void to_host(std::byte* host, const void* device, size_t bytes) override {
    copy(host, device, bytes, cudaMemcpyDeviceToHost, "device to host");
  }

  void to_device(void* device, const std::byte* host, size_t bytes) override {
    copy(device, host, bytes, cudaMemcpyHostToDevice, "host to device");
  }

  void wait(Deadline deadline) override {
    CudaDeviceGuard guard(device_);
    stream_.wait(deadline, "staging copies between host and GPU");
  }

 private:
  void copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* what) {
    if (bytes == 0) return;
    CudaDeviceGuard guard(device_);
    check_cuda_status(cudaMemcpyAsync(dst, src, bytes, kind, stream_.get()),
                      std::string("cudaMemcpyAsync ") + what + " of " + std::to_string(bytes) +
                          " bytes (staging on cuda:" + std::to_string(device_) + ")");
  }

  int device_;
  CudaStream stream_;
  PinnedBuffer areas_[2];
};

}  // namespace

std::unique_ptr<DeviceStaging> make_cuda_staging(int cuda_device) {
  return std::make_unique<CudaStaging>(cuda_device);
}

}  // namespace weft::comm
