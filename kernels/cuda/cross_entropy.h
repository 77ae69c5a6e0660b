#pragma once
// Softmax + cross-entropy over the vocabulary on the GPU, the CUDA twin of
// kernels/cross_entropy.h: rows of Vp >= V entries of which the first V are real tokens; padded
// columns get probability 0 and gradient 0. Device pointers; work is enqueued on ctx.stream().
//
// Two differences from the CPU kernel, both so that nothing here waits for the GPU:
// - crossentropy_forward returns nothing; the mean loss is mean_loss(losses, ...), which copies
//   the losses back and so synchronises: call it once per step for the log.
// - targets live on the device and are not checked by the host: a target outside [0, V) makes
//   that row's loss, and its row of dlogits, NaN, which the loss log then shows.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// probs[BT, Vp] = softmax(logits[BT, Vp] over the first V columns); losses[BT] (f32) =
// -log probs[row, targets[row]], computed as logsumexp - logit (no log of an underflowed
// probability). probs may alias logits (the softmax then happens in place).
void crossentropy_forward(const CudaContext& ctx, float* losses, float* probs, const float* logits,
                          const int32_t* targets, int BT, int V, int Vp);
void crossentropy_forward(const CudaContext& ctx, float* losses, __nv_bfloat16* probs,
                          const __nv_bfloat16* logits, const int32_t* targets, int BT, int V,
                          int Vp);

// dlogits[BT, Vp] = (probs - onehot(targets)) * dloss_scale. WRITES rather than accumulates, as
// on the CPU. dlogits may alias probs.
void crossentropy_backward(const CudaContext& ctx, float* dlogits, const float* probs,
                           const int32_t* targets, float dloss_scale, int BT, int V, int Vp);
void crossentropy_backward(const CudaContext& ctx, __nv_bfloat16* dlogits,
                           const __nv_bfloat16* probs, const int32_t* targets, float dloss_scale,
                           int BT, int V, int Vp);

// The mean of the device array losses[0, BT), summed in double on the host like the CPU
// kernel's return value. Waits for ctx.stream() (it copies the losses back); 0 for BT = 0.
float mean_loss(const CudaContext& ctx, const float* losses, int BT);

}  // namespace weft::kernels::cuda
