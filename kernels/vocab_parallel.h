#pragma once
// The vocabulary-parallel embedding and cross-entropy of tensor parallelism (Megatron's
// scheme): each of the tp ranks holds the rows [start, start + local) of the token embedding
// wte, which is also the tied LM head, so no rank ever holds the full logits. The pieces run
// between the group's reductions, which the caller makes:
//
//   embedding:  vocab_embedding_forward on every rank, then sum over the group
//   loss:       vocab_ce_max        -> max over the group
//               vocab_ce_sums       -> sum over the group (sum of exp and the target's logit)
//               vocab_ce_finish     (losses, and the local probabilities backward needs)
//   backward:   vocab_ce_backward, vocab_embedding_backward (no reduction)
//
// `valid` is how many of this rank's `local` columns are real tokens (< V, the rest being the
// padded vocabulary, which never wins): min(local, max(0, V - start)). Targets and tokens are
// global ids. Backward ACCUMULATES into dwte, as kernels/embedding.h does.
#include <cstdint>

#include "kernels/context.h"

namespace weft::kernels::cpu {

// out[bt, :] = wte[tokens[bt] - start, :] for tokens in [start, start + local), else 0.
void vocab_embedding_forward(const CpuContext& ctx, float* out, const int32_t* tokens,
                             const float* wte, int BT, int C, int start, int local);
// dwte[tokens[bt] - start, :] += dout[bt, :] for tokens in this rank's range.
void vocab_embedding_backward(const CpuContext& ctx, float* dwte, const float* dout,
                              const int32_t* tokens, int BT, int C, int start, int local);

// max[bt] = the largest of row bt's `valid` logits (-inf when valid == 0).
void vocab_ce_max(const CpuContext& ctx, float* max, const float* logits, int BT, int local,
                  int valid);
// sums[bt] = sum of exp(logit - max[bt]) over the valid columns; sums[BT + bt] = the target's
// logit when this rank holds it, else 0.
void vocab_ce_sums(const CpuContext& ctx, float* sums, const float* logits, const float* max,
                   const int32_t* targets, int BT, int local, int valid, int start);
// losses[bt] = log(sum) + max - target logit; probs = the softmax of this rank's columns (0 on
// padding). probs may alias logits.
void vocab_ce_finish(const CpuContext& ctx, float* losses, float* probs, const float* logits,
                     const float* max, const float* sums, int BT, int local, int valid);
// dlogits = scale x (probs - one-hot(target)) on this rank's columns (0 on padding); may alias
// probs.
void vocab_ce_backward(const CpuContext& ctx, float* dlogits, const float* probs,
                       const int32_t* targets, float scale, int BT, int local, int valid,
                       int start);

}  // namespace weft::kernels::cpu
