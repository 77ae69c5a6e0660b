#include <cmath>
#include <cstddef>

#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/embedding.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;

// One thread per output element; consecutive threads take consecutive channels of a row, so
// the gathers from wte and wpe are coalesced row reads.
template <typename T>
__global__ void embedding_forward_kernel(T* out, const int32_t* tokens, const T* wte, const T* wpe,
                                         int T_, int C, int V, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t bt = i / C;
    const int c = static_cast<int>(i % C);
    const int t = static_cast<int>(bt % T_);
    const int token = tokens[bt];
    const bool valid = token >= 0 && token < V;
    out[i] = from_float<T>(valid ? to_float(wte[static_cast<size_t>(token) * C + c]) +
                                       to_float(wpe[static_cast<size_t>(t) * C + c])
                                 : NAN);
  }
}

template <typename T>
__global__ void token_grad_kernel(T* dwte, const T* dout, const int32_t* tokens, int C, int V,
                                  size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t bt = i / C;
    const int token = tokens[bt];
    if (token < 0 || token >= V) continue;
    atomicAdd(dwte + static_cast<size_t>(token) * C + i % C, dout[i]);
  }
}

// One thread per (t, c) of dwpe, summing the B positions t of the batch.
template <typename T>
__global__ void position_grad_kernel(T* dwpe, const T* dout, int B, int T_, int C) {
  const size_t n = static_cast<size_t>(T_) * C;  // also dout's elements per sequence
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int b = 0; b < B; b++) sum += to_float(dout[static_cast<size_t>(b) * n + i]);
    dwpe[i] = from_float<T>(to_float(dwpe[i]) + sum);
  }
}

template <typename T>
void forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int T_, int C, int V,
             cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * T_ * C;
  if (n == 0) return;
  embedding_forward_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(
      out, tokens, wte, wpe, T_, C, V, n);
  WEFT_CUDA_CHECK_LAUNCH("embedding_forward_kernel");
}

template <typename T>
void backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int B, int T_, int C, int V,
              cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * T_ * C;
  if (n == 0) return;
  token_grad_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(dwte, dout, tokens, C,
                                                                            V, n);
  WEFT_CUDA_CHECK_LAUNCH("token_grad_kernel");
  const size_t positions = static_cast<size_t>(T_) * C;
  position_grad_kernel<<<detail::grid_for(positions, kThreads), kThreads, 0, stream>>>(dwpe, dout,
                                                                                       B, T_, C);
  WEFT_CUDA_CHECK_LAUNCH("position_grad_kernel");
}

}  // namespace

void embedding_forward(const CudaContext& ctx, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C, int V) {
  forward(out, tokens, wte, wpe, B, T, C, V, ctx.stream());
}
void embedding_forward(const CudaContext& ctx, __nv_bfloat16* out, const int32_t* tokens,
                       const __nv_bfloat16* wte, const __nv_bfloat16* wpe, int B, int T, int C,
                       int V) {
  forward(out, tokens, wte, wpe, B, T, C, V, ctx.stream());
}

void embedding_backward(const CudaContext& ctx, float* dwte, float* dwpe, const float* dout,
                        const int32_t* tokens, int B, int T, int C, int V) {
  backward(dwte, dwpe, dout, tokens, B, T, C, V, ctx.stream());
}
void embedding_backward(const CudaContext& ctx, __nv_bfloat16* dwte, __nv_bfloat16* dwpe,
                        const __nv_bfloat16* dout, const int32_t* tokens, int B, int T, int C,
                        int V) {
  backward(dwte, dwpe, dout, tokens, B, T, C, V, ctx.stream());
}

}  // namespace weft::kernels::cuda
