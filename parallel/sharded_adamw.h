#pragma once
// AdamW over the part of the flat parameter buffer this rank steps: all of it, or its ZeRO-1
// shard (DataParallel::owned_ranges()), written once over the device: Ctx is the kernels'
// context (kernels::cpu::CpuContext, or kernels::cuda::CudaContext on a GPU) and every kernel
// is called unqualified with it, as the model does (models/gpt_model.h). The moments (and, for
// a bf16 model, the master weights the caller keeps) are f32 and allocated for the owned
// elements only, which is ZeRO-1's memory saving. Weight decay applies per parameter tensor
// (2-D weights yes, biases and LayerNorm gains no), so each owned range is cut where the decay
// flag changes (adamw_segments.h). On a GPU the calls enqueue on the context's stream;
// owned_grad_square_sum waits for it.
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/context.h"
#include "kernels/memory.h"
#include "parallel/adamw_segments.h"

namespace weft::parallel {

template <class Ctx, typename T>
class DeviceAdamW {
 public:
  // State in the context's memory; a GPU context must outlive the optimizer (a CPU one, a
  // thread count, is copied).
  DeviceAdamW(const Ctx& ctx, const std::vector<ShardRange>& owned,
              const std::vector<DecaySpan>& spans, AdamWOptions options);

  // Sum of squared gradients over the owned elements (partials in f32, added in double, in a
  // fixed order: the same gradients give the same sum). With ZeRO-1 each rank holds a disjoint
  // shard, so the global norm needs these summed over ranks.
  double owned_grad_square_sum(const T* grads);
  // Multiplies the owned gradients by `factor` (gradient clipping).
  void scale_grads(T* grads, float factor);
  // One AdamW step (t counts from 1) on the owned elements of the f32 `master` weights, then
  // `params` = master in T. When T is float the model computes with the master weights
  // themselves: pass the same buffer twice, or use the overload below.
  void step(float* master, T* params, const T* grads, float lr, long t);
  void step(float* params, const float* grads, float lr, long t)
    requires std::is_same_v<T, float>
  {
    step(params, params, grads, lr, t);
  }

  // The optimizer state, for checkpoints: the first and second moments of the owned elements,
  // in the context's memory, laid out by segments() (segment s's elements of the flat buffers,
  // [s.offset, s.offset + s.count), are the moments' [s.state, s.state + s.count)), so the
  // model's shard layout says whose moments these are.
  const std::vector<AdamWSegment>& segments() const { return segments_; }
  float* first_moment() { return static_cast<float*>(m_.data()); }
  float* second_moment() { return static_cast<float*>(v_.data()); }

  // Partial sums per square_sum_partials call: kSquareSumPartials of both devices' kernels
  // (checked where each is instantiated).
  static constexpr int kPartials = 256;

 private:
  using Memory = decltype(allocate(std::declval<const Ctx&>(), size_t{}));
  std::conditional_t<std::is_copy_constructible_v<Ctx>, Ctx, const Ctx&> ctx_;
  std::vector<ShardRange> owned_;
  std::vector<AdamWSegment> segments_;
  AdamWOptions options_;
  Memory m_, v_;
  Memory partials_;  // square_sum_partials per owned range
  std::vector<float> host_partials_;
};

// The CPU optimizer; parallel/cuda_sharded_adamw.h has the GPU's.
using ShardedAdamW = DeviceAdamW<kernels::cpu::CpuContext, float>;
extern template class DeviceAdamW<kernels::cpu::CpuContext, float>;

}  // namespace weft::parallel
