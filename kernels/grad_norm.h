#pragma once
// Gradient clipping on the CPU, the twin of kernels/cuda/grad_norm.h: the sum of squares that
// the global norm is made of, as kSquareSumPartials partial sums the caller adds in double, and
// the scaling by the clip factor. Same signatures on both devices, so the optimizer
// (parallel/sharded_adamw.h) is written once.
#include <cstddef>

#include "kernels/context.h"

namespace weft::kernels::cpu {

// Partials written by one square_sum_partials() call.
constexpr int kSquareSumPartials = 256;
// partials[0, kSquareSumPartials) = sums of x[i]^2 over disjoint shares of x[0, n) (each summed
// in f32 within blocks of 4096 elements and in double across them).
void square_sum_partials(const CpuContext& ctx, const float* x, size_t n, float* partials);
// x[i] *= factor for n elements.
void scale(const CpuContext& ctx, float* x, size_t n, float factor);

}  // namespace weft::kernels::cpu
