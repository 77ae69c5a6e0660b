#include "kernels/residual.h"

#include "kernels/cpu/vector_math.h"

namespace weft::kernels::cpu {

WEFT_KERNEL_PER_ISA void residual_forward(const CpuContext&, float* out, const float* a,
                                          const float* b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

WEFT_KERNEL_PER_ISA void residual_backward(const CpuContext&, float* da, float* db,
                                           const float* dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

}  // namespace weft::kernels::cpu
