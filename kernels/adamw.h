#pragma once
// Fused AdamW (Loshchilov & Hutter; PyTorch's torch.optim.AdamW): one pass over n parameters
// updates the moments and the parameter together.
#include <cstddef>

#include "kernels/context.h"

namespace weft::kernels::cpu {

// For each i, with g = grads[i] and step t >= 1 (the first step is t = 1):
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   m_hat = m / (1 - beta1^t);     v_hat = v / (1 - beta2^t)
//   param -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * param)
// The weight decay is decoupled: it acts on the parameter directly, not through m and v.
// Pass weight_decay = 0 for ranges that should not decay (biases, LayerNorm gains).
// A ZeRO-1 shard is just a sub-range: pass pointers offset to the shard and its length.
// Throws InvalidArgument for t < 1. A large range is split over ctx.threads() threads (the
// update is bound by memory bandwidth, which one core does not saturate).
void adamw_update(const CpuContext& ctx, float* params, const float* grads, float* m, float* v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  long t);

}  // namespace weft::kernels::cpu
