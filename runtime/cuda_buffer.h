#pragma once
// CudaBuffer: owning device memory (cudaMalloc on one device) that hands out Tensor views on
// Device::cuda(N); the device twin of Buffer. Move-only; freed with cudaFree on its device.
// Part of weft_runtime_cuda (built only with CUDA): weft_runtime itself stays CUDA-free, so
// every target that never touches a GPU builds and links without the toolkit.
#include <cstddef>
#include <memory>

#include "runtime/tensor.h"

namespace weft {

class CudaBuffer {
 public:
  CudaBuffer() = default;
  // Allocates `bytes` on cuda:`device` and zeroes them (allocation is never on a hot path, and
  // zeroed memory makes a bug that reads before writing repeatable). Throws Unavailable without
  // that device or when it is out of memory.
  CudaBuffer(size_t bytes, int device);
  CudaBuffer(CudaBuffer&&) noexcept = default;
  CudaBuffer& operator=(CudaBuffer&&) noexcept = default;

  void* data() const { return data_.get(); }
  size_t size() const { return size_; }
  int device_index() const { return data_.get_deleter().device; }
  Device device() const { return Device::cuda(device_index()); }
  // `count` elements from the start, as a 1-D tensor on this buffer's device.
  Tensor view(DType dtype, size_t count) const;

  // Synchronous copies between host memory and the first `bytes` of this buffer, for set-up
  // and tests (a hot path enqueues cudaMemcpyAsync on its own stream instead): an upload has
  // landed when it returns, for work on any stream.
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;

 private:
  struct Free {
    int device;  // no initializer: it would hide the default constructor from unique_ptr
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t size_ = 0;
};

}  // namespace weft
