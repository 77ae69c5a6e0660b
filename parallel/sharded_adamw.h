#pragma once
// AdamW over the part of the flat parameter buffer this rank steps: all of it, or its ZeRO-1
// shard (DataParallel::owned_ranges()). The moments are allocated for the owned elements only,
// which is ZeRO-1's memory saving. Weight decay applies per parameter tensor (2-D weights yes,
// biases and LayerNorm gains no), so each owned range is cut where the decay flag changes.
#include <vector>

#include "parallel/data_parallel.h"
#include "runtime/buffer.h"

namespace weft::parallel {

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

// A tensor of the flat buffer and whether it decays; elements no span covers (padding) do not.
struct DecaySpan {
  size_t offset;
  size_t count;
  bool decay;
};

class ShardedAdamW {
 public:
  ShardedAdamW(const std::vector<ShardRange>& owned, const std::vector<DecaySpan>& spans,
               AdamWOptions options);

  // Sum of squared gradients over the owned elements (in double). With ZeRO-1 each rank holds
  // a disjoint shard, so the global norm needs these summed over ranks.
  double owned_grad_square_sum(const float* grads) const;
  // Multiplies the owned gradients by `factor` (gradient clipping).
  void scale_grads(float* grads, float factor) const;
  // One AdamW step (t counts from 1) on the owned elements.
  void step(float* params, const float* grads, float lr, long t);

 private:
  struct Segment {
    size_t offset;  // in the flat buffers
    size_t count;
    size_t state;   // in the moment buffers
    bool decay;
  };
  std::vector<Segment> segments_;
  AdamWOptions options_;
  Buffer m_, v_;
};

}  // namespace weft::parallel
