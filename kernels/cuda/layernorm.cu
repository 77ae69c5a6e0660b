#include <cstddef>

#include "kernels/cuda/check.h"
#include "kernels/cuda/column_sum.cuh"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/layernorm.h"
#include "kernels/layernorm.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::kWarpSize;
using detail::to_float;
using detail::warp_sum;

// One warp per row: rows are a few hundred to a few thousand channels, which 32 lanes stride
// through with coalesced reads, and the row's sums need only shuffles, no shared memory.
constexpr int kRowThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const T* weight,
                             const T* bias, int rows, int C) {
  const int row = blockIdx.x * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;  // the whole warp leaves together, so the shuffles stay full
  const T* x = inp + static_cast<size_t>(row) * C;
  T* y = out + static_cast<size_t>(row) * C;
  // Two passes, as on the CPU: E[x^2] - E[x]^2 cancels badly when the mean is large. The
  // second pass reads the row again from L1/L2, not DRAM.
  float sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) sum += to_float(x[c]);
  const float m = warp_sum(sum) / C;
  float sq = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float d = to_float(x[c]) - m;
    sq += d * d;
  }
  const float s = 1.0f / sqrtf(warp_sum(sq) / C + cpu::kLayerNormEps);
  for (int c = lane; c < C; c += kWarpSize) {
    y[c] = from_float<T>((to_float(x[c]) - m) * s * to_float(weight[c]) + to_float(bias[c]));
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// dinp of one row per warp. With xhat = (x - mean) * rstd and g = dout * weight:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_input_grad_kernel(T* dinp, const T* dout, const T* inp, const T* weight,
                                const float* mean, const float* rstd, int rows, int C) {
  const int row = blockIdx.x * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const size_t base = static_cast<size_t>(row) * C;
  const float m = mean[row];
  const float s = rstd[row];
  float g_sum = 0.0f, gx_sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float g = to_float(dout[base + c]) * to_float(weight[c]);
    g_sum += g;
    gx_sum += g * (to_float(inp[base + c]) - m) * s;
  }
  const float g_mean = warp_sum(g_sum) / C;
  const float gx_mean = warp_sum(gx_sum) / C;
  for (int c = lane; c < C; c += kWarpSize) {
    const float xhat = (to_float(inp[base + c]) - m) * s;
    const float g = to_float(dout[base + c]) * to_float(weight[c]);
    dinp[base + c] = from_float<T>(to_float(dinp[base + c]) + s * (g - g_mean - xhat * gx_mean));
  }
}

// dweight and dbias: sums down the columns, both from one read of dout and inp.
template <typename T>
__global__ void __launch_bounds__(detail::kColumnTile* detail::kRowLanes)
    layernorm_param_grad_kernel(T* dweight, T* dbias, const T* dout, const T* inp,
                                const float* mean, const float* rstd, int rows, int C) {
  auto value = [&](int r, int c, float(&v)[2]) {
    const size_t i = static_cast<size_t>(r) * C + c;
    const float dy = to_float(dout[i]);
    v[0] = dy * (to_float(inp[i]) - mean[r]) * rstd[r];
    v[1] = dy;
  };
  float total[2];
  if (detail::column_totals<2>(rows, C, value, total)) {
    const int c = blockIdx.x * detail::kColumnTile + threadIdx.x;
    dweight[c] = from_float<T>(to_float(dweight[c]) + total[0]);
    dbias[c] = from_float<T>(to_float(dbias[c]) + total[1]);
  }
}

template <typename T>
void forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int B,
             int T_, int C, cudaStream_t stream) {
  const int rows = B * T_;
  if (rows == 0) return;
  layernorm_forward_kernel<<<detail::grid_for_warp_rows(rows, kRowThreads), kRowThreads, 0,
                             stream>>>(out, mean, rstd, inp, weight, bias, rows, C);
  WEFT_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
}

template <typename T>
void backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
              const float* mean, const float* rstd, int B, int T_, int C, cudaStream_t stream) {
  const int rows = B * T_;
  if (rows == 0 || C == 0) return;
  layernorm_input_grad_kernel<<<detail::grid_for_warp_rows(rows, kRowThreads), kRowThreads, 0,
                                stream>>>(dinp, dout, inp, weight, mean, rstd, rows, C);
  WEFT_CUDA_CHECK_LAUNCH("layernorm_input_grad_kernel");
  layernorm_param_grad_kernel<<<detail::column_tiles(C),
                                dim3(detail::kColumnTile, detail::kRowLanes), 0, stream>>>(
      dweight, dbias, dout, inp, mean, rstd, rows, C);
  WEFT_CUDA_CHECK_LAUNCH("layernorm_param_grad_kernel");
}

}  // namespace

void layernorm_forward(const CudaContext& ctx, float* out, float* mean, float* rstd,
                       const float* inp, const float* weight, const float* bias, int B, int T,
                       int C) {
  forward(out, mean, rstd, inp, weight, bias, B, T, C, ctx.stream());
}
void layernorm_forward(const CudaContext& ctx, __nv_bfloat16* out, float* mean, float* rstd,
                       const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                       const __nv_bfloat16* bias, int B, int T, int C) {
  forward(out, mean, rstd, inp, weight, bias, B, T, C, ctx.stream());
}

void layernorm_backward(const CudaContext& ctx, float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int B, int T, int C) {
  backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, T, C, ctx.stream());
}
void layernorm_backward(const CudaContext& ctx, __nv_bfloat16* dinp, __nv_bfloat16* dweight,
                        __nv_bfloat16* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                        const __nv_bfloat16* weight, const float* mean, const float* rstd, int B,
                        int T, int C) {
  backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, T, C, ctx.stream());
}

}  // namespace weft::kernels::cuda
