#include "parallel/sharded_adamw.h"

#include <algorithm>
#include <thread>

#include "kernels/adamw.h"

namespace weft::parallel {

ShardedAdamW::ShardedAdamW(const kernels::cpu::CpuContext& ctx,
                           const std::vector<ShardRange>& owned,
                           const std::vector<DecaySpan>& spans, AdamWOptions options)
    : ctx_(ctx), segments_(adamw_segments(owned, spans)), options_(options) {
  m_ = Buffer(state_elements(segments_) * sizeof(float));
  v_ = Buffer(state_elements(segments_) * sizeof(float));
}

double ShardedAdamW::owned_grad_square_sum(const float* grads) const {
  double total = 0;
  for (const AdamWSegment& s : segments_) {
    const float* g = grads + s.offset;
    // f32 within a block of 4096, the blocks summed in double: accurate enough for a norm.
    for (size_t b = 0; b < s.count; b += 4096) {
      float partial = 0;
      for (size_t i = b; i < std::min(s.count, b + 4096); i++) partial += g[i] * g[i];
      total += partial;
    }
  }
  return total;
}

void ShardedAdamW::scale_grads(float* grads, float factor) const {
  for (const AdamWSegment& s : segments_)
    for (size_t i = 0; i < s.count; i++) grads[s.offset + i] *= factor;
}

void ShardedAdamW::step(float* params, const float* grads, float lr, long t) {
  // The update is bound by memory bandwidth (7 floats moved per parameter), which one core does
  // not saturate: the owned elements are cut into equal parts, one per thread of the context
  // (the trainer's cores per rank), each a run of whole or partial segments.
  const int threads = ctx_.threads();
  const size_t total = state_elements(segments_);
  const kernels::cpu::CpuContext one_thread(1);    // each part's share of the context
  auto run_part = [&](size_t begin, size_t end) {  // [begin, end) of the owned elements
    size_t pos = 0;
    for (const AdamWSegment& s : segments_) {
      size_t lo = std::max(begin, pos), hi = std::min(end, pos + s.count);
      if (lo < hi) {
        size_t skip = lo - pos;
        kernels::cpu::adamw_update(one_thread, params + s.offset + skip, grads + s.offset + skip,
                                   m_.as<float>() + s.state + skip, v_.as<float>() + s.state + skip,
                                   hi - lo, lr, options_.beta1, options_.beta2, options_.eps,
                                   s.decay ? options_.weight_decay : 0.0f, t);
      }
      pos += s.count;
    }
  };
  std::vector<std::jthread> helpers;  // joined when the vector goes out of scope
  for (int i = 1; i < threads; i++)
    helpers.emplace_back(run_part, total * i / threads, total * (i + 1) / threads);
  run_part(0, total / threads);
}

}  // namespace weft::parallel
