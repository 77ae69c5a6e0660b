#pragma once
// Residual connection: out = a + b. Backward ACCUMULATES the same gradient into both inputs.
#include <cstddef>

#include "kernels/context.h"

namespace weft::kernels::cpu {

// out[i] = a[i] + b[i] for n elements; out may alias a or b.
void residual_forward(const CpuContext& ctx, float* out, const float* a, const float* b, size_t n);

// da[i] += dout[i]; db[i] += dout[i].
void residual_backward(const CpuContext& ctx, float* da, float* db, const float* dout, size_t n);

}  // namespace weft::kernels::cpu
