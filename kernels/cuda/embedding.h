#pragma once
// Token + position embedding on the GPU, the CUDA twin of kernels/embedding.h. Backward
// ACCUMULATES into dwte and dwpe. Device pointers (tokens too); work is enqueued on ctx.stream().
//
// Tokens are not checked by the host (that would mean waiting for the GPU): a token outside
// [0, V) gives a NaN row in out, which the loss then shows, and is skipped in backward.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// out[b, t, :] = wte[tokens[b, t], :] + wpe[t, :], with wte[V, C] and wpe[>= T, C].
void embedding_forward(const CudaContext& ctx, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C, int V);
void embedding_forward(const CudaContext& ctx, __nv_bfloat16* out, const int32_t* tokens,
                       const __nv_bfloat16* wte, const __nv_bfloat16* wpe, int B, int T, int C,
                       int V);

// dwte[tokens[b, t], :] += dout[b, t, :] and dwpe[t, :] += dout[b, t, :].
// dwpe sums over the batch in f32 in a fixed order (deterministic). dwte takes atomic adds, as
// a token may occur anywhere in the batch: the order of the adds, and so the last bits of f32
// sums, can differ run to run; in bf16 each add rounds to bf16.
void embedding_backward(const CudaContext& ctx, float* dwte, float* dwpe, const float* dout,
                        const int32_t* tokens, int B, int T, int C, int V);
void embedding_backward(const CudaContext& ctx, __nv_bfloat16* dwte, __nv_bfloat16* dwpe,
                        const __nv_bfloat16* dout, const int32_t* tokens, int B, int T, int C,
                        int V);

}  // namespace weft::kernels::cuda
