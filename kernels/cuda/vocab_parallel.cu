#include <cmath>
#include <cstddef>

#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/vocab_parallel.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;

__device__ __forceinline__ bool held(int32_t token, int start, int local) {
  return token >= start && token < start + local;
}

// One thread per element of out; rows of tokens this rank does not hold are zero.
template <typename T>
__global__ void embed_kernel(T* out, const int32_t* tokens, const T* wte, int C, int start,
                             int local, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int token = tokens[i / C];
    out[i] = held(token, start, local) ? wte[static_cast<size_t>(token - start) * C + i % C]
                                       : from_float<T>(0.0f);
  }
}

template <typename T>
__global__ void embed_grad_kernel(T* dwte, const T* dout, const int32_t* tokens, int C, int start,
                                  int local, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int token = tokens[i / C];
    if (held(token, start, local))
      atomicAdd(dwte + static_cast<size_t>(token - start) * C + i % C, dout[i]);
  }
}

// The loss kernels give each row one warp; lane j reads columns j, j + 32, ... (coalesced).
__device__ __forceinline__ int warp_row() {
  return static_cast<int>((blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) /
                          detail::kWarpSize);
}
__device__ __forceinline__ int lane() { return static_cast<int>(threadIdx.x % detail::kWarpSize); }

template <typename T>
__global__ void max_kernel(float* max, const T* logits, int BT, int local, int valid) {
  const int row = warp_row();
  if (row >= BT) return;
  const T* x = logits + static_cast<size_t>(row) * local;
  float m = -INFINITY;
  for (int j = lane(); j < valid; j += detail::kWarpSize) m = fmaxf(m, to_float(x[j]));
  m = detail::warp_max(m);
  if (lane() == 0) max[row] = m;
}

template <typename T>
__global__ void sums_kernel(float* sums, const T* logits, const float* max,
                            const int32_t* targets, int BT, int local, int valid, int start) {
  const int row = warp_row();
  if (row >= BT) return;
  const T* x = logits + static_cast<size_t>(row) * local;
  float s = 0.0f;
  for (int j = lane(); j < valid; j += detail::kWarpSize) s += expf(to_float(x[j]) - max[row]);
  s = detail::warp_sum(s);
  if (lane() == 0) {
    sums[row] = s;
    const int target = targets[row];
    sums[BT + row] = held(target, start, valid) ? to_float(x[target - start]) : 0.0f;
  }
}

template <typename T>
__global__ void finish_kernel(float* losses, T* probs, const T* logits, const float* max,
                              const float* sums, int BT, int local, int valid) {
  const int row = warp_row();
  if (row >= BT) return;
  const T* x = logits + static_cast<size_t>(row) * local;
  T* p = probs + static_cast<size_t>(row) * local;
  const float inv = 1.0f / sums[row];
  for (int j = lane(); j < local; j += detail::kWarpSize)
    p[j] = from_float<T>(j < valid ? expf(to_float(x[j]) - max[row]) * inv : 0.0f);
  if (lane() == 0) losses[row] = logf(sums[row]) + max[row] - sums[BT + row];
}

template <typename T>
__global__ void ce_backward_kernel(T* dlogits, const T* probs, const int32_t* targets,
                                   float scale, int BT, int local, int valid, int start) {
  const int row = warp_row();
  if (row >= BT) return;
  const T* p = probs + static_cast<size_t>(row) * local;
  T* d = dlogits + static_cast<size_t>(row) * local;
  const int target = targets[row];
  const int hit = held(target, start, valid) ? target - start : -1;
  for (int j = lane(); j < local; j += detail::kWarpSize) {
    const float g = j < valid ? (to_float(p[j]) - (j == hit ? 1.0f : 0.0f)) * scale : 0.0f;
    d[j] = from_float<T>(g);
  }
}

unsigned row_grid(int BT) { return detail::grid_for_warp_rows(static_cast<size_t>(BT), kThreads); }

}  // namespace

#define WEFT_VOCAB_PARALLEL_DEFINE(T)                                                            \
  void vocab_embedding_forward(const CudaContext& ctx, T* out, const int32_t* tokens,           \
                               const T* wte, int BT, int C, int start, int local) {             \
    const size_t n = static_cast<size_t>(BT) * C;                                               \
    if (n == 0) return;                                                                         \
    embed_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(                 \
        out, tokens, wte, C, start, local, n);                                                  \
    WEFT_CUDA_CHECK_LAUNCH("embed_kernel");                                                     \
  }                                                                                             \
  void vocab_embedding_backward(const CudaContext& ctx, T* dwte, const T* dout,                 \
                                const int32_t* tokens, int BT, int C, int start, int local) {   \
    const size_t n = static_cast<size_t>(BT) * C;                                               \
    if (n == 0) return;                                                                         \
    embed_grad_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(           \
        dwte, dout, tokens, C, start, local, n);                                                \
    WEFT_CUDA_CHECK_LAUNCH("embed_grad_kernel");                                                \
  }                                                                                             \
  void vocab_ce_max(const CudaContext& ctx, float* max, const T* logits, int BT, int local,     \
                    int valid) {                                                                \
    if (BT == 0) return;                                                                        \
    max_kernel<<<row_grid(BT), kThreads, 0, ctx.stream()>>>(max, logits, BT, local, valid);     \
    WEFT_CUDA_CHECK_LAUNCH("max_kernel");                                                       \
  }                                                                                             \
  void vocab_ce_sums(const CudaContext& ctx, float* sums, const T* logits, const float* max,    \
                     const int32_t* targets, int BT, int local, int valid, int start) {         \
    if (BT == 0) return;                                                                        \
    sums_kernel<<<row_grid(BT), kThreads, 0, ctx.stream()>>>(sums, logits, max, targets, BT,    \
                                                             local, valid, start);              \
    WEFT_CUDA_CHECK_LAUNCH("sums_kernel");                                                      \
  }                                                                                             \
  void vocab_ce_finish(const CudaContext& ctx, float* losses, T* probs, const T* logits,        \
                       const float* max, const float* sums, int BT, int local, int valid) {     \
    if (BT == 0) return;                                                                        \
    finish_kernel<<<row_grid(BT), kThreads, 0, ctx.stream()>>>(losses, probs, logits, max,      \
                                                               sums, BT, local, valid);         \
    WEFT_CUDA_CHECK_LAUNCH("finish_kernel");                                                    \
  }                                                                                             \
  void vocab_ce_backward(const CudaContext& ctx, T* dlogits, const T* probs,                    \
                         const int32_t* targets, float scale, int BT, int local, int valid,     \
                         int start) {                                                           \
    if (BT == 0) return;                                                                        \
    ce_backward_kernel<<<row_grid(BT), kThreads, 0, ctx.stream()>>>(dlogits, probs, targets,    \
                                                                    scale, BT, local, valid,    \
                                                                    start);                     \
    WEFT_CUDA_CHECK_LAUNCH("ce_backward_kernel");                                               \
  }
WEFT_VOCAB_PARALLEL_DEFINE(float)
WEFT_VOCAB_PARALLEL_DEFINE(__nv_bfloat16)
#undef WEFT_VOCAB_PARALLEL_DEFINE

}  // namespace weft::kernels::cuda
