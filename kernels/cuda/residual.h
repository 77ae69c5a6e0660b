#pragma once
// Residual connection on the GPU, the CUDA twin of kernels/residual.h: out = a + b; backward
// ACCUMULATES the same gradient into both inputs. Device pointers; work is enqueued on
// ctx.stream(); bf16 overloads add in f32 and round once.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// out[i] = a[i] + b[i] for n elements; out may alias a or b.
void residual_forward(const CudaContext& ctx, float* out, const float* a, const float* b, size_t n);
void residual_forward(const CudaContext& ctx, __nv_bfloat16* out, const __nv_bfloat16* a,
                      const __nv_bfloat16* b, size_t n);

// da[i] += dout[i]; db[i] += dout[i].
void residual_backward(const CudaContext& ctx, float* da, float* db, const float* dout, size_t n);
void residual_backward(const CudaContext& ctx, __nv_bfloat16* da, __nv_bfloat16* db,
                       const __nv_bfloat16* dout, size_t n);

}  // namespace weft::kernels::cuda
