#pragma once
// LayerNorm over the channel dimension, eps = 1e-5 (PyTorch's default), as in GPT-2.
// Backward ACCUMULATES (+=) into dinp, dweight and dbias.
#include "kernels/context.h"

namespace weft::kernels::cpu {

inline constexpr float kLayerNormEps = 1e-5f;

// out[B,T,C] = (inp - mean) * rstd * weight[C] + bias[C], per (b, t) row. Saves mean[B*T] and
// rstd[B*T] (1 / sqrt(variance + eps), biased variance) for the backward pass.
void layernorm_forward(const CpuContext& ctx, float* out, float* mean, float* rstd,
                       const float* inp, const float* weight, const float* bias, int B, int T,
                       int C);

// dinp[B,T,C] += d/dinp, dweight[C] += sum over rows of dout * normalised input,
// dbias[C] += sum over rows of dout. mean and rstd are what the forward saved.
void layernorm_backward(const CpuContext& ctx, float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int B, int T, int C);

}  // namespace weft::kernels::cpu
