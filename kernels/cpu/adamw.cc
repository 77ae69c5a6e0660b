#include "kernels/adamw.h"

#include <cmath>
#include <string>

#include "kernels/cpu/vector_math.h"
#include "runtime/error.h"

namespace weft::kernels::cpu {
namespace {

WEFT_KERNEL_PER_ISA void adamw_loop(float* params, const float* grads, float* m, float* v, size_t n,
                                    float lr, float beta1, float beta2, float eps,
                                    float weight_decay, float m_correction, float v_correction) {
  for (size_t i = 0; i < n; i++) {
    const float g = grads[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi * m_correction;
    const float v_hat = vi * v_correction;
    params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * params[i]);
  }
}

}  // namespace

void adamw_update(const CpuContext&, float* params, const float* grads, float* m, float* v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  long t) {
  if (t < 1) {
    throw Error(ErrorCode::InvalidArgument,
                "adamw_update: step t = " + std::to_string(t) +
                    " but bias correction needs t >= 1; count optimizer steps from 1");
  }
  detail::FlushDenormals flush;  // g * g of a tiny gradient
  // Bias corrections once per call, in double: beta^t for large t is far below float's
  // resolution around 1, but 1 - beta^t is what matters and double keeps it exact enough.
  const float m_correction = static_cast<float>(1.0 / (1.0 - std::pow(double{beta1}, t)));
  const float v_correction = static_cast<float>(1.0 / (1.0 - std::pow(double{beta2}, t)));
  adamw_loop(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, m_correction,
             v_correction);
}

}  // namespace weft::kernels::cpu
