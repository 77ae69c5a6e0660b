// BufferOps on a GPU: kernels/cuda and device-to-device copies on a stream of their own, each
// waited for (see buffer_ops.h), and a scratch area in device memory.
#include <cuda_runtime_api.h>

#include <string>

#include "comm/buffer_ops.h"
#include "kernels/cuda/reduce.h"
#include "runtime/cuda_buffer.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_stream.h"

namespace weft::comm {
namespace {

class CudaBufferOps final : public DeviceBufferOps {
 public:
  CudaBufferOps(int device, size_t scratch_bytes)
      : device_(device), stream_(device), scratch_(scratch_bytes, device) {}

  void copy(void* dst, const void* src, size_t bytes) override {
    if (dst == src || bytes == 0) return;
    CudaDeviceGuard on(device_);
    check_cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_.get()),
                      "cudaMemcpyAsync of " + std::to_string(bytes) + " bytes on " + where());
    wait();
  }
  void reduce(void* out, const void* a, const void* b, size_t count, DType dtype,
              ReduceOp op) override {
    CudaDeviceGuard on(device_);
    kernels::cuda::reduce(out, a, b, count, dtype, op, stream_.get());
    wait();
  }
  void scale_down(void* data, size_t count, DType dtype, int divisor) override {
    CudaDeviceGuard on(device_);
    kernels::cuda::scale_down(data, count, dtype, divisor, stream_.get());
    wait();
  }
  void* scratch() override { return scratch_.data(); }
  size_t scratch_bytes() const override { return scratch_.size(); }
  void set_deadline(Deadline deadline) override { deadline_ = deadline; }

 private:
  std::string where() const { return "cuda:" + std::to_string(device_) + " (collective work)"; }
  void wait() { stream_.wait(deadline_, "collective work (copies and reductions)"); }

  int device_;
  CudaStream stream_;
  CudaBuffer scratch_;
  Deadline deadline_ = Deadline::max();  // set_deadline(), by the communicator before each op
};

}  // namespace

std::unique_ptr<DeviceBufferOps> make_cuda_buffer_ops(int cuda_device, size_t scratch_bytes) {
  return std::make_unique<CudaBufferOps>(cuda_device, scratch_bytes);
}

}  // namespace weft::comm
