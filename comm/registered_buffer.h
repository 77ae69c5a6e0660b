#pragma once
// RegisteredBuffer: host memory from a communicator (Communicator::alloc). Over a transport with
// direct access (shm) it is registered: every rank of the group on this node can map it, and a
// collective whose tensors are registered on every rank reads and writes the peers' buffers in
// place instead of copying through FIFOs (comm/direct_access.h). Elsewhere it is plain memory
// and ops on it take the transport's path. Move-only; the memory goes back when it dies.
#include <cstddef>
#include <memory>

#include "comm/direct_access.h"
#include "runtime/buffer.h"
#include "runtime/tensor.h"

namespace weft::comm {

class RegisteredBuffer {
 public:
  RegisteredBuffer() = default;
  explicit RegisteredBuffer(std::shared_ptr<RegisteredSegment> segment);
  explicit RegisteredBuffer(Buffer plain);
  // An op still running on the buffer keeps its memory mapped until it ends, so dropping the
  // buffer then is an error (logged, naming the fix), not a crash.
  ~RegisteredBuffer();
  RegisteredBuffer(RegisteredBuffer&&) noexcept = default;
  RegisteredBuffer& operator=(RegisteredBuffer&&) noexcept;

  void* data() const { return segment_ ? segment_->data() : plain_.data(); }
  size_t size() const { return segment_ ? segment_->bytes() : plain_.size(); }
  template <typename T>
  T* as() const { return static_cast<T*>(data()); }
  Tensor view(DType dtype, size_t count) const;
  // Whether the peers can map it (false: plain memory, or a peer did not take it).
  bool registered() const { return segment_ && segment_->shared(); }

 private:
  void release();
  std::shared_ptr<RegisteredSegment> segment_;
  Buffer plain_;
};

}  // namespace weft::comm
