#pragma once
// Fused AdamW on the GPU, the CUDA twin of kernels/adamw.h: the same update, step by step
// (moments, bias correction from step t >= 1, decoupled weight decay), one pass over n
// parameters. Device pointers; work is enqueued on ctx.stream(). A ZeRO-1 shard is a sub-range.
//
// Mixed precision: the optimizer keeps f32 master weights and f32 moments; the model computes
// with a bf16 copy of the weights, which the bf16 overloads rewrite from the updated master
// weights in the same pass (so there is no separate cast kernel), reading f32 or bf16 grads.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// For each i, with g = grads[i]:
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   param -= lr * (m / (1 - beta1^t) / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * param)
// Throws InvalidArgument for t < 1 (before enqueuing anything).
void adamw_update(const CudaContext& ctx, float* params, const float* grads, float* m, float* v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  long t);

// The same on f32 master_params, then params_bf16[i] = bf16(master_params[i]).
void adamw_update(const CudaContext& ctx, float* master_params, __nv_bfloat16* params_bf16,
                  const __nv_bfloat16* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, long t);
void adamw_update(const CudaContext& ctx, float* master_params, __nv_bfloat16* params_bf16,
                  const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, long t);

}  // namespace weft::kernels::cuda
