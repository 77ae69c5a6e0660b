#pragma once
// Tensor: a non-owning, contiguous view (pointer, dtype, shape, device).
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/dtype.h"

namespace weft {

class Tensor {
 public:
  Tensor() = default;
  Tensor(void* data, DType dtype, std::vector<int64_t> shape, Device device = Device::cpu());
  // A 1-D view of `count` elements.
  static Tensor flat(void* data, DType dtype, size_t count, Device device = Device::cpu()) {
    return Tensor(data, dtype, {static_cast<int64_t>(count)}, device);
  }

  void* data() const { return data_; }
  template <typename T>
  T* data_as() const { return static_cast<T*>(data_); }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  Device device() const { return device_; }
  size_t numel() const { return numel_; }
  size_t nbytes() const { return numel_ * dtype_size(dtype_); }
  // The first `count` elements of a buffer of `capacity` bytes as a 1-D view: what Buffer,
  // PinnedBuffer and CudaBuffer hand out. InvalidArgument naming the `buffer` ("pinned buffer")
  // and its size when they do not fit.
  static Tensor within(void* data, size_t capacity, DType dtype, size_t count, Device device,
                       const char* buffer);
  // Elements [offset, offset + count) as a 1-D view.
  Tensor slice(size_t offset, size_t count) const;
  std::string describe() const;  // "f32[4096] on cpu"

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
  Device device_;
  size_t numel_ = 0;
};

}  // namespace weft
