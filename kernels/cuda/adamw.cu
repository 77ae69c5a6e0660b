#include <cmath>
#include <string>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "runtime/error.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;

struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  float m_correction;  // 1 / (1 - beta1^t)
  float v_correction;  // 1 / (1 - beta2^t)
};

// params_bf16 may be nullptr (the f32-only overload).
template <typename G>
__global__ void adamw_kernel(float* params, __nv_bfloat16* params_bf16, const G* grads, float* m,
                             float* v, size_t n, AdamWStep step) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = to_float(grads[i]);
    const float mi = step.beta1 * m[i] + (1.0f - step.beta1) * g;
    const float vi = step.beta2 * v[i] + (1.0f - step.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi * step.m_correction;
    const float v_hat = vi * step.v_correction;
    const float p = params[i];
    const float updated = p - step.lr * (m_hat / (sqrtf(v_hat) + step.eps) + step.weight_decay * p);
    params[i] = updated;
    if (params_bf16 != nullptr) params_bf16[i] = from_float<__nv_bfloat16>(updated);
  }
}

template <typename G>
void update(float* params, __nv_bfloat16* params_bf16, const G* grads, float* m, float* v, size_t n,
            float lr, float beta1, float beta2, float eps, float weight_decay, long t,
            cudaStream_t stream) {
  if (t < 1) {
    throw Error(ErrorCode::InvalidArgument,
                "kernels::cuda::adamw_update: step t = " + std::to_string(t) +
                    " but bias correction needs t >= 1; count optimizer steps from 1");
  }
  if (n == 0) return;
  // Bias corrections once per call, in double, as on the CPU: 1 - beta^t is what matters and
  // float cannot resolve it for large t.
  const AdamWStep step{lr,
                       beta1,
                       beta2,
                       eps,
                       weight_decay,
                       static_cast<float>(1.0 / (1.0 - std::pow(double{beta1}, t))),
                       static_cast<float>(1.0 / (1.0 - std::pow(double{beta2}, t)))};
  adamw_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(params, params_bf16, grads,
                                                                       m, v, n, step);
  WEFT_CUDA_CHECK_LAUNCH("adamw_kernel");
}

}  // namespace

void adamw_update(const CudaContext& ctx, float* params, const float* grads, float* m, float* v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  long t) {
  update(params, nullptr, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, ctx.stream());
}
void adamw_update(const CudaContext& ctx, float* master_params, __nv_bfloat16* params_bf16,
                  const __nv_bfloat16* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, long t) {
  update(master_params, params_bf16, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t,
         ctx.stream());
}
void adamw_update(const CudaContext& ctx, float* master_params, __nv_bfloat16* params_bf16,
                  const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, long t) {
  update(master_params, params_bf16, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t,
         ctx.stream());
}

}  // namespace weft::kernels::cuda
