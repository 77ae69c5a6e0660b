#include "runtime/tensor.h"

#include <utility>

#include "runtime/error.h"

namespace weft {

Tensor::Tensor(void* data, DType dtype, std::vector<int64_t> shape, Device device)
    : data_(data), dtype_(dtype), shape_(std::move(shape)), device_(device) {
  numel_ = 1;
  for (int64_t d : shape_) {
    if (d < 0) throw Error(ErrorCode::InvalidArgument, "tensor shape has a negative dimension");
    numel_ *= static_cast<size_t>(d);
  }
  if (numel_ > 0 && data_ == nullptr)
    throw Error(ErrorCode::InvalidArgument, "tensor of " + std::to_string(numel_) +
                                                " elements has a null data pointer");
}

Tensor Tensor::within(void* data, size_t capacity, DType dtype, size_t count, Device device,
                      const char* buffer) {
  if (count > capacity / dtype_size(dtype))
    throw Error(ErrorCode::InvalidArgument, "view of " + std::to_string(count) + " " +
                                                dtype_name(dtype) + " exceeds the " + buffer +
                                                " of " + std::to_string(capacity) + " bytes" +
                                                (device.is_cpu() ? "" : " on " + device.str()));
  return flat(data, dtype, count, device);
}

Tensor Tensor::slice(size_t offset, size_t count) const {
  if (offset + count > numel_)
    throw Error(ErrorCode::InvalidArgument, "slice [" + std::to_string(offset) + ", " +
                                                std::to_string(offset + count) + ") of " +
                                                describe() + " is out of range");
  return flat(static_cast<char*>(data_) + offset * dtype_size(dtype_), dtype_, count, device_);
}

std::string Tensor::describe() const {
  std::string s = std::string(dtype_name(dtype_)) + "[";
  for (size_t i = 0; i < shape_.size(); i++) s += (i ? "," : "") + std::to_string(shape_[i]);
  return s + "] on " + device_.str();
}

}  // namespace weft
