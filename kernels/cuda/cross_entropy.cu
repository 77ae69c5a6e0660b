#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/device_math.cuh"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::kWarpSize;
using detail::to_float;

// One block per row: a vocabulary is hundreds to tens of thousands of columns, enough for a
// block to stride through with coalesced reads.
constexpr int kThreads = 256;

// A running softmax denominator: sum of exp(x - max) over the values seen so far.
struct MaxSum {
  float max = -INFINITY;
  float sum = 0.0f;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY) return b;  // no values seen yet (exp(-inf - -inf) would be NaN)
  if (b.max == -INFINITY) return a;
  const float max = fmaxf(a.max, b.max);
  return {max, a.sum * expf(a.max - max) + b.sum * expf(b.max - max)};
}

// Merges every thread's MaxSum; all threads get the result.
__device__ MaxSum block_merge(MaxSum mine) {
  __shared__ float warp_max[kThreads / kWarpSize], warp_sum[kThreads / kWarpSize];
  for (int offset = 16; offset > 0; offset /= 2) {
    MaxSum other;
    other.max = __shfl_xor_sync(0xffffffffu, mine.max, offset);
    other.sum = __shfl_xor_sync(0xffffffffu, mine.sum, offset);
    mine = merge(mine, other);
  }
  const int warp = threadIdx.x / kWarpSize;
  if (threadIdx.x % kWarpSize == 0) {
    warp_max[warp] = mine.max;
    warp_sum[warp] = mine.sum;
  }
  __syncthreads();
  MaxSum all;
  for (int w = 0; w < kThreads / kWarpSize; w++) all = merge(all, {warp_max[w], warp_sum[w]});
  return all;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    crossentropy_forward_kernel(float* losses, T* probs, const T* logits, const int32_t* targets,
                                int V, int Vp) {
  const size_t row = blockIdx.x;
  const T* x = logits + row * Vp;
  T* p = probs + row * Vp;
  const int target = targets[row];
  const bool valid = target >= 0 && target < V;
  // Read the target's logit before anything is written: probs may alias logits. The block
  // merge below has a barrier, so every read of this pass precedes every write of the next.
  const float target_logit = valid ? to_float(x[target]) : 0.0f;
  MaxSum mine;
  for (int j = threadIdx.x; j < V; j += kThreads) mine = merge(mine, {to_float(x[j]), 1.0f});
  const MaxSum all = block_merge(mine);
  const float inv = 1.0f / all.sum;
  // Each column is read and then written by the same thread, so in place is safe.
  for (int j = threadIdx.x; j < Vp; j += kThreads) {
    p[j] = from_float<T>(j < V ? expf(to_float(x[j]) - all.max) * inv : 0.0f);
  }
  if (threadIdx.x == 0) losses[row] = valid ? logf(all.sum) + all.max - target_logit : NAN;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    crossentropy_backward_kernel(T* dlogits, const T* probs, const int32_t* targets, float scale,
                                 int V, int Vp) {
  const size_t row = blockIdx.x;
  const T* p = probs + row * Vp;
  T* d = dlogits + row * Vp;
  const int target = targets[row];
  const bool valid = target >= 0 && target < V;
  for (int j = threadIdx.x; j < Vp; j += kThreads) {
    float g = 0.0f;
    if (j < V) g = valid ? (to_float(p[j]) - (j == target ? 1.0f : 0.0f)) * scale : NAN;
    d[j] = from_float<T>(g);
  }
}

template <typename T>
void forward(float* losses, T* probs, const T* logits, const int32_t* targets, int BT, int V,
             int Vp, cudaStream_t stream) {
  if (BT == 0) return;
  crossentropy_forward_kernel<<<BT, kThreads, 0, stream>>>(losses, probs, logits, targets, V, Vp);
  WEFT_CUDA_CHECK_LAUNCH("crossentropy_forward_kernel");
}

template <typename T>
void backward(T* dlogits, const T* probs, const int32_t* targets, float dloss_scale, int BT, int V,
              int Vp, cudaStream_t stream) {
  if (BT == 0) return;
  crossentropy_backward_kernel<<<BT, kThreads, 0, stream>>>(dlogits, probs, targets, dloss_scale, V,
                                                            Vp);
  WEFT_CUDA_CHECK_LAUNCH("crossentropy_backward_kernel");
}

}  // namespace

void crossentropy_forward(const CudaContext& ctx, float* losses, float* probs, const float* logits,
                          const int32_t* targets, int BT, int V, int Vp) {
  forward(losses, probs, logits, targets, BT, V, Vp, ctx.stream());
}
void crossentropy_forward(const CudaContext& ctx, float* losses, __nv_bfloat16* probs,
                          const __nv_bfloat16* logits, const int32_t* targets, int BT, int V,
                          int Vp) {
  forward(losses, probs, logits, targets, BT, V, Vp, ctx.stream());
}

void crossentropy_backward(const CudaContext& ctx, float* dlogits, const float* probs,
                           const int32_t* targets, float dloss_scale, int BT, int V, int Vp) {
  backward(dlogits, probs, targets, dloss_scale, BT, V, Vp, ctx.stream());
}
void crossentropy_backward(const CudaContext& ctx, __nv_bfloat16* dlogits,
                           const __nv_bfloat16* probs, const int32_t* targets, float dloss_scale,
                           int BT, int V, int Vp) {
  backward(dlogits, probs, targets, dloss_scale, BT, V, Vp, ctx.stream());
}

float mean_loss(const CudaContext& ctx, const float* losses, int BT) {
  if (BT <= 0) return 0.0f;
  std::vector<float> host(static_cast<size_t>(BT));
  WEFT_CUDA_CHECK(cudaMemcpyAsync(host.data(), losses, host.size() * sizeof(float),
                                  cudaMemcpyDeviceToHost, ctx.stream()));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
  double total = 0.0;
  for (float loss : host) total += loss;
  return static_cast<float>(total / BT);
}

}  // namespace weft::kernels::cuda
