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
  if (count * dtype_size(dtype) > size_)
    throw Error(ErrorCode::InvalidArgument, "view of " + std::to_string(count) + " " +
                                                dtype_name(dtype) + " exceeds pinned buffer of " +
                                                std::to_string(size_) + " bytes");
  return Tensor::flat(data_.get(), dtype, count);
}

}  // namespace weft
