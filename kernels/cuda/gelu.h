#pragma once
// GELU (tanh approximation, GPT-2's) on the GPU, the CUDA twin of kernels/gelu.h. Device
// pointers; work is enqueued on ctx.stream(); bf16 overloads compute in f32.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// out[i] = gelu(inp[i]) for n elements. out may alias inp.
void gelu_forward(const CudaContext& ctx, float* out, const float* inp, size_t n);
void gelu_forward(const CudaContext& ctx, __nv_bfloat16* out, const __nv_bfloat16* inp, size_t n);

// dinp[i] += gelu'(inp[i]) * dout[i]. ACCUMULATES, like every backward here.
void gelu_backward(const CudaContext& ctx, float* dinp, const float* inp, const float* dout,
                   size_t n);
void gelu_backward(const CudaContext& ctx, __nv_bfloat16* dinp, const __nv_bfloat16* inp,
                   const __nv_bfloat16* dout, size_t n);

}  // namespace weft::kernels::cuda
