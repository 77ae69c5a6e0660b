#include "runtime/pinned_buffer.h"

#include <cstring>

#include "runtime/cuda_device.h"
#include "runtime/error.h"

namespace weft {

void PinnedBuffer::Free::operator()(void* p) const { cudaFreeHost(p); }

PinnedBuffer::PinnedBuffer(size_t bytes, int device) : size_(bytes) {
  if (bytes == 0) return;
  require_cuda_device(device, "pinning host memory for cuda:" + std::to_string(device));
  CudaDeviceGuard on(device);
  void* p = nullptr;
  // Portable: usable from every device's streams, not only the one current here.
  check_cuda_status(cudaHostAlloc(&p, bytes, cudaHostAllocPortable),
                    "cudaHostAlloc of " + std::to_string(bytes) + " pinned bytes");
  data_.reset(p);
  std::memset(p, 0, bytes);
}

Tensor PinnedBuffer::view(DType dtype, size_t count) const {
  return Tensor::within(data_.get(), size_, dtype, count, Device::cpu(), "pinned buffer");
}

}  // namespace weft
