#pragma once
// DeviceAdamW's body (parallel/sharded_adamw.h), instantiated once per device:
// parallel/sharded_adamw.cc for the CPU, parallel/sharded_adamw_cuda.cc for a GPU. The includer
// brings the device's kernel headers (adamw, grad_norm, memory) first.
#include <type_traits>

#include "parallel/sharded_adamw.h"

namespace weft::parallel {

template <class Ctx, typename T>
DeviceAdamW<Ctx, T>::DeviceAdamW(const Ctx& ctx, const std::vector<ShardRange>& owned,
                                 const std::vector<DecaySpan>& spans, AdamWOptions options)
    : ctx_(ctx),
      owned_(owned),
      segments_(adamw_segments(owned, spans)),
      options_(options),
      m_(allocate(ctx, state_elements(segments_) * sizeof(float))),
      v_(allocate(ctx, state_elements(segments_) * sizeof(float))),
      partials_(allocate(ctx, owned.size() * kPartials * sizeof(float))),
      host_partials_(owned.size() * kPartials) {}

template <class Ctx, typename T>
double DeviceAdamW<Ctx, T>::owned_grad_square_sum(const T* grads) {
  float* partials = static_cast<float*>(partials_.data());
  for (size_t i = 0; i < owned_.size(); i++)
    square_sum_partials(ctx_, grads + owned_[i].offset, owned_[i].count,
                        partials + i * kPartials);
  copy_bytes(ctx_, host_partials_.data(), partials, host_partials_.size() * sizeof(float));
  synchronize(ctx_);
  double total = 0;
  for (float p : host_partials_) total += p;
  return total;
}

template <class Ctx, typename T>
void DeviceAdamW<Ctx, T>::scale_grads(T* grads, float factor) {
  for (const ShardRange& r : owned_) scale(ctx_, grads + r.offset, r.count, factor);
}

template <class Ctx, typename T>
void DeviceAdamW<Ctx, T>::step(float* master, T* params, const T* grads, float lr, long t) {
  float* m = static_cast<float*>(m_.data());
  float* v = static_cast<float*>(v_.data());
  for (const AdamWSegment& s : segments_) {
    const float decay = s.decay ? options_.weight_decay : 0.0f;
    if constexpr (std::is_same_v<T, float>) {
      (void)params;  // the master weights are the model's
      adamw_update(ctx_, master + s.offset, grads + s.offset, m + s.state, v + s.state, s.count,
                   lr, options_.beta1, options_.beta2, options_.eps, decay, t);
    } else {
      adamw_update(ctx_, master + s.offset, params + s.offset, grads + s.offset, m + s.state,
                   v + s.state, s.count, lr, options_.beta1, options_.beta2, options_.eps, decay,
                   t);
    }
  }
}

}  // namespace weft::parallel
