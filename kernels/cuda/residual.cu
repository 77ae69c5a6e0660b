#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/residual.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;

template <typename T>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
  }
}

template <typename T>
__global__ void residual_backward_kernel(T* da, T* db, const T* dout, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float d = to_float(dout[i]);
    da[i] = from_float<T>(to_float(da[i]) + d);
    db[i] = from_float<T>(to_float(db[i]) + d);
  }
}

template <typename T>
void forward(T* out, const T* a, const T* b, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  residual_forward_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(out, a, b, n);
  WEFT_CUDA_CHECK_LAUNCH("residual_forward_kernel");
}

template <typename T>
void backward(T* da, T* db, const T* dout, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  residual_backward_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(da, db, dout, n);
  WEFT_CUDA_CHECK_LAUNCH("residual_backward_kernel");
}

}  // namespace

void residual_forward(const CudaContext& ctx, float* out, const float* a, const float* b,
                      size_t n) {
  forward(out, a, b, n, ctx.stream());
}
void residual_forward(const CudaContext& ctx, __nv_bfloat16* out, const __nv_bfloat16* a,
                      const __nv_bfloat16* b, size_t n) {
  forward(out, a, b, n, ctx.stream());
}
void residual_backward(const CudaContext& ctx, float* da, float* db, const float* dout, size_t n) {
  backward(da, db, dout, n, ctx.stream());
}
void residual_backward(const CudaContext& ctx, __nv_bfloat16* da, __nv_bfloat16* db,
                       const __nv_bfloat16* dout, size_t n) {
  backward(da, db, dout, n, ctx.stream());
}

}  // namespace weft::kernels::cuda
