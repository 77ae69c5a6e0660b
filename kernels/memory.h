#pragma once
// Filling and copying memory of a CPU context, the twins of kernels/cuda/memory.h (which
// enqueue the same on the context's stream), so that code written once over the device can
// clear a gradient or keep a copy of its input without naming the device.
#include <cstddef>
#include <cstring>

#include "kernels/context.h"

namespace weft::kernels::cpu {

inline void zero_bytes(const CpuContext&, void* p, size_t bytes) { std::memset(p, 0, bytes); }
inline void copy_bytes(const CpuContext&, void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
// Work given to a CPU context is done when its call returns.
inline void synchronize(const CpuContext&) {}

}  // namespace weft::kernels::cpu
