#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/gelu.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;
constexpr int kThreads = 256;

// 0.5 (1 + tanh(u)) is the logistic sigmoid of 2u, the form the CPU kernel uses too.
__device__ __forceinline__ float sigmoid_2u(float x) {
  const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
  return 1.0f / (1.0f + expf(-2.0f * u));
}

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float x = to_float(inp[i]);
    out[i] = from_float<T>(x * sigmoid_2u(x));
  }
}

// d/dx [x s] = s + x * 2 s (1 - s) * du/dx with s = sigmoid(2u), du/dx = sqrt(2/pi)
// (1 + 3 * 0.044715 x^2).
template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float x = to_float(inp[i]);
    const float s = sigmoid_2u(x);
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    const float grad = s + 2.0f * x * s * (1.0f - s) * du;
    dinp[i] = from_float<T>(to_float(dinp[i]) + grad * to_float(dout[i]));
  }
}

template <typename T>
void forward(T* out, const T* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_forward_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(out, inp, n);
  WEFT_CUDA_CHECK_LAUNCH("gelu_forward_kernel");
}

template <typename T>
void backward(T* dinp, const T* inp, const T* dout, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_backward_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(dinp, inp, dout, n);
  WEFT_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
}

}  // namespace

void gelu_forward(const CudaContext& ctx, float* out, const float* inp, size_t n) {
  forward(out, inp, n, ctx.stream());
}
void gelu_forward(const CudaContext& ctx, __nv_bfloat16* out, const __nv_bfloat16* inp, size_t n) {
  forward(out, inp, n, ctx.stream());
}
void gelu_backward(const CudaContext& ctx, float* dinp, const float* inp, const float* dout,
                   size_t n) {
  backward(dinp, inp, dout, n, ctx.stream());
}
void gelu_backward(const CudaContext& ctx, __nv_bfloat16* dinp, const __nv_bfloat16* inp,
                   const __nv_bfloat16* dout, size_t n) {
  backward(dinp, inp, dout, n, ctx.stream());
}

}  // namespace weft::kernels::cuda
