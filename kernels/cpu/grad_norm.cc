#include "kernels/grad_norm.h"

#include <algorithm>

namespace weft::kernels::cpu {

void square_sum_partials(const CpuContext&, const float* x, size_t n, float* partials) {
  constexpr size_t kBlock = 4096;
  for (size_t p = 0; p < kSquareSumPartials; p++) {
    const size_t begin = n * p / kSquareSumPartials, end = n * (p + 1) / kSquareSumPartials;
    double share = 0;
    for (size_t b = begin; b < end; b += kBlock) {
      float block = 0;
      for (size_t i = b; i < std::min(end, b + kBlock); i++) block += x[i] * x[i];
      share += block;
    }
    partials[p] = static_cast<float>(share);
  }
}

void scale(const CpuContext&, float* x, size_t n, float factor) {
  for (size_t i = 0; i < n; i++) x[i] *= factor;
}

}  // namespace weft::kernels::cpu
