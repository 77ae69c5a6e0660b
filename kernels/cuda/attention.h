#pragma once
// Causal multi-head self-attention on the GPU, the CUDA twin of kernels/attention.h: the same
// layouts (qkv[B, T, 3C] with query, key, value channels side by side, NH heads of hs = C / NH
// channels; out[B, T, C]; att[B, NH, T, T] the softmax probabilities, zero above the diagonal,
// saved for backward). Device pointers; work is enqueued on ctx.stream().
//
// The products are cuBLAS strided-batched GEMMs straight on strided views of qkv (the heads of
// one sequence are a batch, hs elements apart), one call per sequence and product, so no
// permuted copies of q, k and v are made. bf16 overloads keep att and datt in bf16 and compute
// the softmax in f32.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// out = softmax(mask(Q K^T / sqrt(hs))) V per head; att saved. C must be divisible by NH.
void attention_forward(const CudaContext& ctx, float* out, float* att, const float* qkv, int B,
                       int T, int C, int NH);
void attention_forward(const CudaContext& ctx, __nv_bfloat16* out, __nv_bfloat16* att,
                       const __nv_bfloat16* qkv, int B, int T, int C, int NH);

// dqkv[B, T, 3C] += gradient through the attention, given dout[B, T, C] and the forward's qkv
// and att. datt[B, NH, T, T] is scratch: its contents on entry and exit mean nothing.
void attention_backward(const CudaContext& ctx, float* dqkv, float* datt, const float* dout,
                        const float* qkv, const float* att, int B, int T, int C, int NH);
void attention_backward(const CudaContext& ctx, __nv_bfloat16* dqkv, __nv_bfloat16* datt,
                        const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                        const __nv_bfloat16* att, int B, int T, int C, int NH);

}  // namespace weft::kernels::cuda
