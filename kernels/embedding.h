#pragma once
// Token + position embedding, GPT-2 style. Backward ACCUMULATES into dwte and dwpe.
#include <cstdint>

#include "kernels/context.h"

namespace weft::kernels::cpu {

// out[b, t, :] = wte[tokens[b, t], :] + wpe[t, :], with wte[V, C] and wpe[>= T, C].
// Throws InvalidArgument if a token is outside [0, V).
void embedding_forward(const CpuContext& ctx, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C, int V);

// dwte[tokens[b, t], :] += dout[b, t, :] and dwpe[t, :] += dout[b, t, :] (a token that occurs
// twice gets both contributions).
void embedding_backward(const CpuContext& ctx, float* dwte, float* dwpe, const float* dout,
                        const int32_t* tokens, int B, int T, int C, int V);

}  // namespace weft::kernels::cpu
