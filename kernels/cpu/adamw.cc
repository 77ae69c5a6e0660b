#include "kernels/adamw.h"

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/vector_math.h"
#include "runtime/error.h"

namespace weft::kernels::cpu {
namespace {

// Below this many elements an update runs on the calling thread alone.
constexpr size_t kThreadedElements = size_t{1} << 18;

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

void adamw_update(const CpuContext& ctx, float* params, const float* grads, float* m, float* v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  long t) {
  if (t < 1) {
    throw Error(ErrorCode::InvalidArgument,
                "adamw_update: step t = " + std::to_string(t) +
                    " but bias correction needs t >= 1; count optimizer steps from 1");
  }
  // Bias corrections once per call, in double: beta^t for large t is far below float's
  // resolution around 1, but 1 - beta^t is what matters and double keeps it exact enough.
  const float m_correction = static_cast<float>(1.0 / (1.0 - std::pow(double{beta1}, t)));
  const float v_correction = static_cast<float>(1.0 / (1.0 - std::pow(double{beta2}, t)));
  // Bound by memory bandwidth (7 floats moved per parameter), which one core does not
  // saturate: a large range is cut into equal parts, one per thread of the context. Small ones
  // stay on this thread, where starting threads would cost more than they save.
  const size_t threads = n >= kThreadedElements ? static_cast<size_t>(ctx.threads()) : 1;
  auto part = [&](size_t k) {
    const size_t begin = n * k / threads, end = n * (k + 1) / threads;
    detail::FlushDenormals flush_here;  // per thread
    adamw_loop(params + begin, grads + begin, m + begin, v + begin, end - begin, lr, beta1, beta2,
               eps, weight_decay, m_correction, v_correction);
  };
  std::vector<std::jthread> helpers;  // joined when the vector goes out of scope
  for (size_t k = 1; k < threads; k++) helpers.emplace_back(part, k);
  part(0);
}

}  // namespace weft::kernels::cpu
