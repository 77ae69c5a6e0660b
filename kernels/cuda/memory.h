#pragma once
// Device memory of a CUDA context: allocating it on the context's GPU, filling and copying it on
// its stream, the twins of kernels/memory.h. Each fill or copy enqueues its work and returns;
// synchronize() waits for everything enqueued.
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "runtime/cuda_buffer.h"

namespace weft::kernels::cuda {

// `bytes` on ctx.device(), zeroed.
inline CudaBuffer allocate(const CudaContext& ctx, size_t bytes) {
  return CudaBuffer(bytes, ctx.device());
}

inline void zero_bytes(const CudaContext& ctx, void* p, size_t bytes) {
  WEFT_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ctx.stream()));
}
inline void copy_bytes(const CudaContext& ctx, void* dst, const void* src, size_t bytes) {
  WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, ctx.stream()));
}
inline void synchronize(const CudaContext& ctx) {
  WEFT_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
}

}  // namespace weft::kernels::cuda
