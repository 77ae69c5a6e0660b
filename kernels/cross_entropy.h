#pragma once
// Softmax + cross-entropy over the vocabulary, fused. Rows may be padded: a row has Vp >= V
// entries of which the first V are real tokens (pad the LM head to a friendly size, as llm.c
// does); padded columns get probability 0 and gradient 0.
#include <cstdint>

#include "kernels/context.h"

namespace weft::kernels::cpu {

// probs[BT, Vp] = softmax(logits[BT, Vp] over the first V columns); losses[BT] =
// -log probs[row, targets[row]]. Returns the mean of losses (summed in double). probs may alias
// logits (the softmax then happens in place, no second [BT, Vp] buffer). Throws InvalidArgument
// if a target is outside [0, V).
float crossentropy_forward(const CpuContext& ctx, float* losses, float* probs, const float* logits,
                           const int32_t* targets, int BT, int V, int Vp);

// dlogits[BT, Vp] = (probs - onehot(targets)) * dloss_scale, where dloss_scale is dL/dloss of
// every position (1 / (BT * micro-batches) for a mean loss). WRITES rather than accumulates:
// the logits' gradient has no other contributor. dlogits may alias probs.
void crossentropy_backward(const CpuContext& ctx, float* dlogits, const float* probs,
                           const int32_t* targets, float dloss_scale, int BT, int V, int Vp);

// The mean of BT losses, as the CUDA twin computes it (a sum in double, then divided).
float mean_loss(const CpuContext& ctx, const float* losses, int BT);

}  // namespace weft::kernels::cpu
