#pragma once
// Gradient clipping on the GPU: the sum of squares that the global norm is made of, and the
// scaling by the clip factor. Device pointers; work is enqueued on ctx.stream().
//
// The sum is deterministic: each of a fixed number of blocks sums a fixed share of the
// elements in f32, in a fixed order, and writes its partial; the caller adds the partials (in
// double, on the host, once per step). No atomics, so the same gradients give the same norm to
// the last bit, run after run, and the clip factor with it.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// Partials written by one square_sum_partials() call.
constexpr int kSquareSumPartials = 256;
// partials[0, kSquareSumPartials) = sums of x[i]^2 over disjoint shares of x[0, n).
void square_sum_partials(const CudaContext& ctx, const float* x, size_t n, float* partials);
void square_sum_partials(const CudaContext& ctx, const __nv_bfloat16* x, size_t n, float* partials);
// x[i] *= factor for n elements (bf16 rounds once).
void scale(const CudaContext& ctx, float* x, size_t n, float factor);
void scale(const CudaContext& ctx, __nv_bfloat16* x, size_t n, float factor);

}  // namespace weft::kernels::cuda
