#pragma once
// Memory of a CPU context: allocating, filling and copying it, the twins of
// kernels/cuda/memory.h (which allocate on the context's GPU and enqueue on its stream), so
// that code written once over the device (the model, the optimizer) can hold, clear and copy
// its buffers without naming the device.
#include <cstddef>
#include <cstring>

#include "kernels/context.h"
#include "runtime/buffer.h"

namespace weft::kernels::cpu {

// `bytes` of host memory, zeroed.
inline Buffer allocate(const CpuContext&, size_t bytes) { return Buffer(bytes); }

inline void zero_bytes(const CpuContext&, void* p, size_t bytes) { std::memset(p, 0, bytes); }
inline void copy_bytes(const CpuContext&, void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
// Work given to a CPU context is done when its call returns.
inline void synchronize(const CpuContext&) {}

}  // namespace weft::kernels::cpu
