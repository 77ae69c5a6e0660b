#pragma once
// Elementwise reductions used by the collectives: out[i] = a[i] op b[i].
// f16/bf16 are combined in f32 and rounded once per call. ReduceOp::avg combines as a sum;
// the collective divides once at the end with scale_down().
#include <cstddef>

#include "runtime/dtype.h"

namespace weft::kernels::cpu {

// `out` may alias `a` or `b`.
void reduce(void* out, const void* a, const void* b, size_t count, DType dtype, ReduceOp op);
// data[i] /= divisor (integer types divide and truncate toward zero).
void scale_down(void* data, size_t count, DType dtype, int divisor);

}  // namespace weft::kernels::cpu
