#pragma once
// PinnedBuffer: page-locked host memory (cudaHostAlloc) for staging between host and device:
// copies from it run asynchronously and at full PCIe/NVLink speed, which copies from ordinary
// (pageable) memory do not. Views are cpu tensors. Move-only. Part of weft_runtime_cuda.
#include <cstddef>
#include <memory>

#include "runtime/tensor.h"

namespace weft {

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  // Allocates and zeroes `bytes` (touching every page once here, not in a hot path), from
  // cuda:`device`'s context: the calling thread's current device would otherwise be device 0,
  // and every rank would open a context (hundreds of MB) on GPU 0. Throws Unavailable without
  // that GPU or when the memory cannot be pinned.
  PinnedBuffer(size_t bytes, int device);
  PinnedBuffer(PinnedBuffer&&) noexcept = default;
  PinnedBuffer& operator=(PinnedBuffer&&) noexcept = default;

  void* data() const { return data_.get(); }
  size_t size() const { return size_; }
  Tensor view(DType dtype, size_t count) const;

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t size_ = 0;
};

}  // namespace weft
