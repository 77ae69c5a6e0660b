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
  return Tensor::within(data_.get(), size_, dtype, count, Device::cpu(), "buffer");
}

}  // namespace weft
