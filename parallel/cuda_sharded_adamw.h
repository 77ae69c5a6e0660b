#pragma once
// AdamW on a GPU over the part of the flat buffers this rank steps (all of it, or its ZeRO-1
// shard), the twin of sharded_adamw.h; built only with CUDA. Moments and master weights are
// f32; the model's parameters and gradients are T (float, or __nv_bfloat16, whose parameters
// the update rewrites from the master weights in the same pass). Work is enqueued on the stream of
// the CudaContext it was made with.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <vector>

#include "kernels/cuda/context.h"
#include "parallel/adamw_segments.h"
#include "runtime/cuda_buffer.h"

namespace weft::parallel {

template <typename T>
class CudaShardedAdamW {
 public:
  // State on ctx.device(); `ctx` outlives the optimizer.
  CudaShardedAdamW(const kernels::cuda::CudaContext& ctx, const std::vector<ShardRange>& owned,
                   const std::vector<DecaySpan>& spans, AdamWOptions options);

  // Sum of squared gradients over the owned elements, deterministic (see
  // kernels/cuda/grad_norm.h). Waits for the stream.
  double owned_grad_square_sum(const T* grads);
  // Multiplies the owned gradients by `factor` (gradient clipping).
  void scale_grads(T* grads, float factor);
  // One AdamW step (t counts from 1) on the owned elements of `master`, then `params` =
  // master in T. For T = float the model computes with the master weights themselves: pass
  // the same buffer twice.
  void step(float* master, T* params, const T* grads, float lr, long t);

 private:
  const kernels::cuda::CudaContext& ctx_;
  std::vector<ShardRange> owned_;
  std::vector<AdamWSegment> segments_;
  AdamWOptions options_;
  CudaBuffer m_, v_;
  CudaBuffer partials_;  // kSquareSumPartials per owned range
  std::vector<float> host_partials_;
};

extern template class CudaShardedAdamW<float>;
extern template class CudaShardedAdamW<__nv_bfloat16>;

}  // namespace weft::parallel
