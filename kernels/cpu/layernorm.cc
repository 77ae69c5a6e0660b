#include "kernels/layernorm.h"

#include <cmath>
#include <cstddef>

#include "kernels/cpu/vector_math.h"

namespace weft::kernels::cpu {

WEFT_KERNEL_PER_ISA void layernorm_forward(const CpuContext&, float* out, float* mean, float* rstd,
                                           const float* inp, const float* weight, const float* bias,
                                           int B, int T, int C) {
  detail::FlushDenormals flush;
  const int rows = B * T;
  for (int i = 0; i < rows; i++) {
    const float* x = inp + static_cast<size_t>(i) * C;
    float* y = out + static_cast<size_t>(i) * C;
    // Two passes (mean, then squared deviations): a single-pass E[x^2] - E[x]^2 cancels badly
    // when the mean is large next to the spread.
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++) sum += x[c];
    const float m = sum / C;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int c = 0; c < C; c++) sq += (x[c] - m) * (x[c] - m);
    const float s = 1.0f / std::sqrt(sq / C + kLayerNormEps);
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
    mean[i] = m;
    rstd[i] = s;
  }
}

// With xhat = (x - mean) * rstd and g = dout * weight, the input gradient of one row is
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
// the usual LayerNorm backward (the two means come from differentiating mean and rstd).
// The three gradients are distinct buffers; saying so (__restrict) lets GCC vectorise the
// last loop, which otherwise needs more runtime overlap checks than it is willing to emit.
WEFT_KERNEL_PER_ISA void layernorm_backward(const CpuContext&, float* __restrict dinp,
                                            float* __restrict dweight, float* __restrict dbias,
                                            const float* dout, const float* inp,
                                            const float* weight, const float* mean,
                                            const float* rstd, int B, int T, int C) {
  detail::FlushDenormals flush;
  const int rows = B * T;
  for (int i = 0; i < rows; i++) {
    const size_t row = static_cast<size_t>(i) * C;
    const float* x = inp + row;
    const float* dy = dout + row;
    float* dx = dinp + row;
    const float m = mean[i];
    const float s = rstd[i];
    float g_sum = 0.0f;
    float gx_sum = 0.0f;
#pragma omp simd reduction(+ : g_sum, gx_sum)
    for (int c = 0; c < C; c++) {
      const float g = dy[c] * weight[c];
      g_sum += g;
      gx_sum += g * (x[c] - m) * s;
    }
    const float g_mean = g_sum / C;
    const float gx_mean = gx_sum / C;
    for (int c = 0; c < C; c++) {
      const float xhat = (x[c] - m) * s;
      dbias[c] += dy[c];
      dweight[c] += dy[c] * xhat;
      dx[c] += s * (dy[c] * weight[c] - g_mean - xhat * gx_mean);
    }
  }
}

}  // namespace weft::kernels::cpu
