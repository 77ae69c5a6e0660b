#pragma once
// Where AdamW steps, and with which weight decay: the ranges of the flat parameter buffer a rank
// owns (everything, or its ZeRO-1 shard), cut where the decay flag changes. Shared by the host
// optimizer (sharded_adamw.h) and the GPU one (cuda_sharded_adamw.h).
#include <cstddef>
#include <vector>

#include "parallel/data_parallel.h"

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

struct AdamWSegment {
  size_t offset;  // in the flat buffers
  size_t count;
  size_t state;   // in the moment buffers, which hold the owned elements only
  bool decay;
};

// The owned ranges, in order, cut at every change of the decay flag; contiguous segments that
// decay alike are merged (fewer, longer kernel calls).
std::vector<AdamWSegment> adamw_segments(const std::vector<ShardRange>& owned,
                                         const std::vector<DecaySpan>& spans);
// Elements the segments cover: the size of each moment buffer.
size_t state_elements(const std::vector<AdamWSegment>& segments);

}  // namespace weft::parallel
