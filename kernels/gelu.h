#pragma once
// GELU, tanh approximation (GPT-2's): gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#include <cstddef>

#include "kernels/context.h"

namespace weft::kernels::cpu {

// out[i] = gelu(inp[i]) for n elements. out may alias inp.
void gelu_forward(const CpuContext& ctx, float* out, const float* inp, size_t n);

// dinp[i] += gelu'(inp[i]) * dout[i]. ACCUMULATES, like every backward here.
void gelu_backward(const CpuContext& ctx, float* dinp, const float* inp, const float* dout,
                   size_t n);

}  // namespace weft::kernels::cpu
