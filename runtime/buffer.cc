#include "runtime/buffer.h"

#include <cstdlib>
#include <cstring>

#include "runtime/error.h"

namespace weft {

void Buffer::Free::operator()(void* p) const { std::free(p); }

Buffer::Buffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  // Round up so aligned_alloc's size is a multiple of the alignment.
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw Error(ErrorCode::Unavailable, "out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, rounded);
  data_.reset(p);
}

Tensor Buffer::view(DType dtype, size_t count) const {
  if (count * dtype_size(dtype) > size_)
    throw Error(ErrorCode::InvalidArgument, "view of " + std::to_string(count) + " " +
                                                dtype_name(dtype) + " exceeds buffer of " +
                                                std::to_string(size_) + " bytes");
  return Tensor::flat(data_.get(), dtype, count);
}

}  // namespace weft
