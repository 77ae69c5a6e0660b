#pragma once
// AdamW over the part of the flat parameter buffer this rank steps: all of it, or its ZeRO-1
// shard (DataParallel::owned_ranges()). The moments are allocated for the owned elements only,
// which is ZeRO-1's memory saving. Weight decay applies per parameter tensor (2-D weights yes,
// biases and LayerNorm gains no), so each owned range is cut where the decay flag changes
// (adamw_segments.h).
#include <vector>

#include "kernels/context.h"
#include "parallel/adamw_segments.h"
#include "parallel/data_parallel.h"
#include "runtime/buffer.h"

namespace weft::parallel {

class ShardedAdamW {
 public:
  // step() spreads the update over ctx.threads() threads.
  ShardedAdamW(const kernels::cpu::CpuContext& ctx, const std::vector<ShardRange>& owned,
               const std::vector<DecaySpan>& spans, AdamWOptions options);

  // Sum of squared gradients over the owned elements (in double). With ZeRO-1 each rank holds
  // a disjoint shard, so the global norm needs these summed over ranks.
  double owned_grad_square_sum(const float* grads) const;
  // Multiplies the owned gradients by `factor` (gradient clipping).
  void scale_grads(float* grads, float factor) const;
  // One AdamW step (t counts from 1) on the owned elements.
  void step(float* params, const float* grads, float lr, long t);

 private:
  kernels::cpu::CpuContext ctx_;
  std::vector<AdamWSegment> segments_;
  AdamWOptions options_;
  Buffer m_, v_;
};

}  // namespace weft::parallel
