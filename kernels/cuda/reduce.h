#pragma once
// Elementwise reductions for the collectives on device memory: the CUDA twin of
// kernels/reduce.h, with the same meaning for every dtype and op (f16/bf16 combine in f32 and
// round once; ReduceOp::avg combines as a sum and the collective divides once at the end with
// scale_down). Both calls only enqueue work on `stream`; they return before it runs.
#include <cuda_runtime_api.h>

#include <cstddef>

#include "runtime/dtype.h"

namespace weft::kernels::cuda {

// out[i] = a[i] op b[i] for i < count. `out` may be `a` or `b` (in place); other overlaps are
// not allowed. Pointers must be aligned to the element size (any cudaMalloc'd buffer at a
// whole-element offset is); where all three share their offset from a 16-byte boundary the
// kernel moves 16 bytes per load, otherwise one element. Throws InvalidArgument for a pointer
// that is not element-aligned.
void reduce(void* out, const void* a, const void* b, size_t count, DType dtype, ReduceOp op,
            cudaStream_t stream);

// data[i] /= divisor (integer types divide and truncate toward zero). Throws InvalidArgument
// for divisor <= 0 or a pointer that is not element-aligned.
void scale_down(void* data, size_t count, DType dtype, int divisor, cudaStream_t stream);

}  // namespace weft::kernels::cuda
