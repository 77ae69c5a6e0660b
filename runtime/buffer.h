#pragma once
// Buffer: owning, 64-byte-aligned host storage that hands out Tensor views. Move-only.
#include <cstddef>
#include <memory>

#include "runtime/tensor.h"

namespace weft {

class Buffer {
 public:
  Buffer() = default;
  // Allocates `bytes` (zero-filled, so every page is touched once here and not in a hot path).
  explicit Buffer(size_t bytes);
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;

  void* data() const { return data_.get(); }
  size_t size() const { return size_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_.get()); }
  Tensor view(DType dtype, size_t count) const;

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t size_ = 0;
};

}  // namespace weft
