#include "kernels/gelu.h"

#include "kernels/cpu/vector_math.h"

namespace weft::kernels::cpu {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

}  // namespace

// 0.5 (1 + tanh(u)) is the logistic sigmoid of 2u, so gelu(x) = x / (1 + e^(-2u)): one
// vectorisable exp instead of a scalar tanhf call per element.
WEFT_KERNEL_PER_ISA void gelu_forward(const CpuContext&, float* out, const float* inp, size_t n) {
  detail::FlushDenormals flush;
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    out[i] = x / (1.0f + detail::exp_approx(-2.0f * u));
  }
}

// With s = sigmoid(2u): gelu = x s, and d/dx = s + x * 2 s (1 - s) * du/dx,
// du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2). (2 s (1 - s) is 0.5 sech^2(u) written via s.)
WEFT_KERNEL_PER_ISA void gelu_backward(const CpuContext&, float* dinp, const float* inp,
                                       const float* dout, size_t n) {
  detail::FlushDenormals flush;
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float s = 1.0f / (1.0f + detail::exp_approx(-2.0f * u));
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    dinp[i] += (s + 2.0f * x * s * (1.0f - s) * du) * dout[i];
  }
}

}  // namespace weft::kernels::cpu
