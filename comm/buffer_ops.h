#pragma once
// BufferOps: how weft's algorithms touch their buffers besides sending and receiving them:
// copies, reductions, and the final division of an average. Host memory takes memmove and
// kernels/cpu. GPU memory (CUDA tensors over a transport that moves device memory as it is,
// nccl-ring) takes CUDA copies and kernels/cuda on a stream of the ops' own, each waited for
// before the algorithm goes on, since its next step hands what was written to the transport,
// whose own stream is not ordered after ours.
#include <cstddef>
#include <functional>
#include <memory>

#include "runtime/clock.h"
#include "runtime/dtype.h"

namespace weft::comm {

class BufferOps {
 public:
  virtual ~BufferOps() = default;
  // `bytes` from src to dst; the two may be equal (nothing to do) but must not partly overlap.
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // out[i] = a[i] op b[i] for `count` elements (avg sums: see scale_down). out may alias a or b.
  virtual void reduce(void* out, const void* a, const void* b, size_t count, DType dtype,
                      ReduceOp op) = 0;
  // data[i] /= divisor: the end of an average.
  virtual void scale_down(void* data, size_t count, DType dtype, int divisor) = 0;
};

// Plain host memory.
BufferOps& host_buffer_ops();

// Operations on one GPU's memory, with a scratch area there for the algorithms.
class DeviceBufferOps : public BufferOps {
 public:
  virtual void* scratch() = 0;
  virtual size_t scratch_bytes() const = 0;
  // The running op's deadline: waits for the GPU's work give up then with Timeout, so that a
  // hung GPU fails the op instead of blocking its thread for ever. Set before each op.
  virtual void set_deadline(Deadline deadline) = 0;
};
using MakeDeviceBufferOps =
    std::function<std::unique_ptr<DeviceBufferOps>(int cuda_device, size_t scratch_bytes)>;

// kernels/cuda on cuda:`cuda_device`. Throws Unavailable when weft was built without CUDA or
// the device cannot be used.
std::unique_ptr<DeviceBufferOps> make_cuda_buffer_ops(int cuda_device, size_t scratch_bytes);

}  // namespace weft::comm
