#include <cmath>
#include <cstddef>
#include <string>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/blas.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "runtime/error.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::kWarpSize;
using detail::to_float;

constexpr int kRowThreads = 256;

// One warp per row of att (row t of head (b, h) is row (b * NH + h) * T + t). On entry the row
// holds the scaled scores Q K^T / sqrt(hs) for every key; keys 0..t become softmax
// probabilities, keys t+1.. become 0.
template <typename T>
__global__ void __launch_bounds__(kRowThreads) causal_softmax_kernel(T* att, size_t rows, int T_) {
  const size_t row =
      blockIdx.x * static_cast<size_t>(blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;  // whole warps leave together
  const int t = static_cast<int>(row % T_);
  T* p = att + row * T_;
  float max = -INFINITY;
  for (int j = lane; j <= t; j += kWarpSize) max = fmaxf(max, to_float(p[j]));
  max = detail::warp_max(max);
  float sum = 0.0f;
  for (int j = lane; j <= t; j += kWarpSize) sum += expf(to_float(p[j]) - max);
  const float inv = 1.0f / detail::warp_sum(sum);
  for (int j = lane; j < T_; j += kWarpSize) {
    p[j] = from_float<T>(j <= t ? expf(to_float(p[j]) - max) * inv : 0.0f);
  }
}

// Softmax backward in place, one warp per row: on entry grad holds dP (the gradient w.r.t.
// the probabilities), on exit dS = P * (dP - sum_j P_j dP_j), the gradient w.r.t. the scaled
// scores, with zeros above the diagonal (where dP holds products no output depended on).
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    causal_softmax_backward_kernel(T* grad, const T* probs, size_t rows, int T_) {
  const size_t row =
      blockIdx.x * static_cast<size_t>(blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const int t = static_cast<int>(row % T_);
  T* g = grad + row * T_;
  const T* p = probs + row * T_;
  float dot = 0.0f;
  for (int j = lane; j <= t; j += kWarpSize) dot += to_float(p[j]) * to_float(g[j]);
  dot = detail::warp_sum(dot);
  for (int j = lane; j < T_; j += kWarpSize) {
    g[j] = from_float<T>(j <= t ? to_float(p[j]) * (to_float(g[j]) - dot) : 0.0f);
  }
}

void check_heads(int C, int NH, const char* op) {
  if (NH <= 0 || C % NH != 0) {
    throw Error(ErrorCode::InvalidArgument,
                std::string("kernels::cuda::") + op + ": " + std::to_string(NH) +
                    " heads do not divide " + std::to_string(C) +
                    " channels; choose a head count that divides d-model");
  }
}

template <typename T>
void launch_softmax(T* att, size_t rows, int T_, cudaStream_t stream) {
  causal_softmax_kernel<<<detail::grid_for_warp_rows(rows, kRowThreads), kRowThreads, 0, stream>>>(
      att, rows, T_);
  WEFT_CUDA_CHECK_LAUNCH("causal_softmax_kernel");
}

template <typename T>
void launch_softmax_backward(T* grad, const T* probs, size_t rows, int T_, cudaStream_t stream) {
  causal_softmax_backward_kernel<<<detail::grid_for_warp_rows(rows, kRowThreads), kRowThreads, 0,
                                   stream>>>(grad, probs, rows, T_);
  WEFT_CUDA_CHECK_LAUNCH("causal_softmax_backward_kernel");
}

// Within sequence b, head h's query for position t is at qkv_b[t * 3C + h * hs]: a [T, hs]
// matrix with row stride 3C, and the next head's starts hs further on. Those are exactly the
// ld and the batch stride of a strided-batched GEMM over the NH heads.
template <typename T>
void forward(const CudaContext& ctx, T* out, T* att, const T* qkv, int B, int T_, int C, int NH) {
  check_heads(C, NH, "attention_forward");
  if (B == 0 || T_ == 0 || C == 0) return;
  const int hs = C / NH;
  const int ld_qkv = 3 * C;
  const long long att_stride = static_cast<long long>(T_) * T_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int b = 0; b < B; b++) {
    const T* q = qkv + static_cast<size_t>(b) * T_ * ld_qkv;
    const T* k = q + C;
    T* att_b = att + static_cast<size_t>(b) * NH * att_stride;
    // S[T, T] = scale * Q[T, hs] K[T, hs]^T
    detail::gemm_row_major<T>(ctx, false, true, T_, T_, hs, scale, q, ld_qkv, hs, k, ld_qkv, hs,
                              0.0f, att_b, T_, att_stride, NH);
  }
  launch_softmax(att, static_cast<size_t>(B) * NH * T_, T_, ctx.stream());
  for (int b = 0; b < B; b++) {
    const T* v = qkv + static_cast<size_t>(b) * T_ * ld_qkv + 2 * C;
    const T* att_b = att + static_cast<size_t>(b) * NH * att_stride;
    // O[T, hs] = P[T, T] V[T, hs], written straight into out's [T, C] rows at column h * hs.
    detail::gemm_row_major<T>(ctx, false, false, T_, hs, T_, 1.0f, att_b, T_, att_stride, v, ld_qkv,
                              hs, 0.0f, out + static_cast<size_t>(b) * T_ * C, C, hs, NH);
  }
}

template <typename T>
void backward(const CudaContext& ctx, T* dqkv, T* datt, const T* dout, const T* qkv, const T* att,
              int B, int T_, int C, int NH) {
  check_heads(C, NH, "attention_backward");
  if (B == 0 || T_ == 0 || C == 0) return;
  const int hs = C / NH;
  const int ld_qkv = 3 * C;
  const long long att_stride = static_cast<long long>(T_) * T_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int b = 0; b < B; b++) {
    const size_t qkv_offset = static_cast<size_t>(b) * T_ * ld_qkv;
    const T* v = qkv + qkv_offset + 2 * C;
    T* dv = dqkv + qkv_offset + 2 * C;
    const T* dout_b = dout + static_cast<size_t>(b) * T_ * C;
    const T* att_b = att + static_cast<size_t>(b) * NH * att_stride;
    T* datt_b = datt + static_cast<size_t>(b) * NH * att_stride;
    // dV[T, hs] += P[T, T]^T dO[T, hs]
    detail::gemm_row_major<T>(ctx, true, false, T_, hs, T_, 1.0f, att_b, T_, att_stride, dout_b, C,
                              hs, 1.0f, dv, ld_qkv, hs, NH);
    // dP[T, T] = dO[T, hs] V[T, hs]^T
    detail::gemm_row_major<T>(ctx, false, true, T_, T_, hs, 1.0f, dout_b, C, hs, v, ld_qkv, hs,
                              0.0f, datt_b, T_, att_stride, NH);
  }
  launch_softmax_backward(datt, att, static_cast<size_t>(B) * NH * T_, T_, ctx.stream());
  for (int b = 0; b < B; b++) {
    const size_t qkv_offset = static_cast<size_t>(b) * T_ * ld_qkv;
    const T* q = qkv + qkv_offset;
    const T* k = q + C;
    T* dq = dqkv + qkv_offset;
    T* dk = dq + C;
    const T* ds_b = datt + static_cast<size_t>(b) * NH * att_stride;
    // dQ[T, hs] += scale * dS[T, T] K[T, hs]
    detail::gemm_row_major<T>(ctx, false, false, T_, hs, T_, scale, ds_b, T_, att_stride, k, ld_qkv,
                              hs, 1.0f, dq, ld_qkv, hs, NH);
    // dK[T, hs] += scale * dS[T, T]^T Q[T, hs]
    detail::gemm_row_major<T>(ctx, true, false, T_, hs, T_, scale, ds_b, T_, att_stride, q, ld_qkv,
                              hs, 1.0f, dk, ld_qkv, hs, NH);
  }
}

}  // namespace

void attention_forward(const CudaContext& ctx, float* out, float* att, const float* qkv, int B,
                       int T, int C, int NH) {
  forward(ctx, out, att, qkv, B, T, C, NH);
}
void attention_forward(const CudaContext& ctx, __nv_bfloat16* out, __nv_bfloat16* att,
                       const __nv_bfloat16* qkv, int B, int T, int C, int NH) {
  forward(ctx, out, att, qkv, B, T, C, NH);
}

void attention_backward(const CudaContext& ctx, float* dqkv, float* datt, const float* dout,
                        const float* qkv, const float* att, int B, int T, int C, int NH) {
  backward(ctx, dqkv, datt, dout, qkv, att, B, T, C, NH);
}
void attention_backward(const CudaContext& ctx, __nv_bfloat16* dqkv, __nv_bfloat16* datt,
                        const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                        const __nv_bfloat16* att, int B, int T, int C, int NH) {
  backward(ctx, dqkv, datt, dout, qkv, att, B, T, C, NH);
}

}  // namespace weft::kernels::cuda
