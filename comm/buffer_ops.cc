#include "comm/buffer_ops.h"

#include <cstring>

#include "kernels/reduce.h"

namespace weft::comm {
namespace {

class HostBufferOps final : public BufferOps {
 public:
  void copy(void* dst, const void* src, size_t bytes) override {
    if (dst != src && bytes) std::memmove(dst, src, bytes);
  }
  void reduce(void* out, const void* a, const void* b, size_t count, DType dtype,
              ReduceOp op) override {
    kernels::cpu::reduce(out, a, b, count, dtype, op);
  }
  void scale_down(void* data, size_t count, DType dtype, int divisor) override {
    kernels::cpu::scale_down(data, count, dtype, divisor);
  }
};

// Made when the program is compiled (constinit), so no op pays a function-local static's guard,
// and none can run before it exists.
constinit HostBufferOps host_ops;

}  // namespace

BufferOps& host_buffer_ops() { return host_ops; }

}  // namespace weft::comm
