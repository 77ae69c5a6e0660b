#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/grad_norm.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;

// Block b sums elements b*kThreads + t + k*stride for its threads t: a grid-stride loop with a
// fixed grid, so which thread adds which element, and in what order, never changes.
template <typename T>
__global__ void square_sum_kernel(const T* x, size_t n, float* partials) {
  __shared__ float warp_sums[kThreads / detail::kWarpSize];
  float sum = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * kThreads) {
    const float v = to_float(x[i]);
    sum += v * v;
  }
  sum = detail::warp_sum(sum);
  const int warp = threadIdx.x / detail::kWarpSize, lane = threadIdx.x % detail::kWarpSize;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = lane < kThreads / detail::kWarpSize ? warp_sums[lane] : 0.0f;
    sum = detail::warp_sum(sum);
    if (lane == 0) partials[blockIdx.x] = sum;
  }
}

template <typename T>
__global__ void scale_kernel(T* x, size_t n, float factor) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    x[i] = from_float<T>(to_float(x[i]) * factor);
  }
}

template <typename T>
void square_sum(const T* x, size_t n, float* partials, cudaStream_t stream) {
  square_sum_kernel<<<kSquareSumPartials, kThreads, 0, stream>>>(x, n, partials);
  WEFT_CUDA_CHECK_LAUNCH("square_sum_kernel");
}

template <typename T>
void scale_by(T* x, size_t n, float factor, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(x, n, factor);
  WEFT_CUDA_CHECK_LAUNCH("scale_kernel");
}

}  // namespace

void square_sum_partials(const CudaContext& ctx, const float* x, size_t n, float* partials) {
  square_sum(x, n, partials, ctx.stream());
}
void square_sum_partials(const CudaContext& ctx, const __nv_bfloat16* x, size_t n,
                         float* partials) {
  square_sum(x, n, partials, ctx.stream());
}
void scale(const CudaContext& ctx, float* x, size_t n, float factor) {
  scale_by(x, n, factor, ctx.stream());
}
void scale(const CudaContext& ctx, __nv_bfloat16* x, size_t n, float factor) {
  scale_by(x, n, factor, ctx.stream());
}

}  // namespace weft::kernels::cuda
