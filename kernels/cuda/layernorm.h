#pragma once
// LayerNorm over the channel dimension on the GPU, the CUDA twin of kernels/layernorm.h (same
// eps, kernels::cpu::kLayerNormEps = 1e-5). Backward ACCUMULATES (+=) into dinp, dweight and
// dbias. Device pointers; work is enqueued on ctx.stream(). The bf16 overloads keep mean and rstd
// in f32 and compute in f32.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// out[B,T,C] = (inp - mean) * rstd * weight[C] + bias[C] per (b, t) row; saves mean[B*T] and
// rstd[B*T] (1 / sqrt(biased variance + eps)) for backward.
void layernorm_forward(const CudaContext& ctx, float* out, float* mean, float* rstd,
                       const float* inp, const float* weight, const float* bias, int B, int T,
                       int C);
void layernorm_forward(const CudaContext& ctx, __nv_bfloat16* out, float* mean, float* rstd,
                       const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                       const __nv_bfloat16* bias, int B, int T, int C);

// dinp += d/dinp; dweight[C] += sum over rows of dout * normalised input; dbias[C] += sum over
// rows of dout (both sums in f32, in a fixed order: deterministic).
void layernorm_backward(const CudaContext& ctx, float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int B, int T, int C);
void layernorm_backward(const CudaContext& ctx, __nv_bfloat16* dinp, __nv_bfloat16* dweight,
                        __nv_bfloat16* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                        const __nv_bfloat16* weight, const float* mean, const float* rstd, int B,
                        int T, int C);

}  // namespace weft::kernels::cuda
