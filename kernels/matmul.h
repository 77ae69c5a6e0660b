#pragma once
// Linear layer through the BLAS: out = inp @ weight^T + bias, the layout of nn.Linear and
// llm.c (weight is [OC, C], one row per output channel). Backward ACCUMULATES (+=) into every
// gradient, so a trainer can sum micro-batches into the same buffers; zero them per step.
//
// Threads: each product runs on the BLAS with ctx.threads() threads (the call holds a
// BlasThreads guard at that count, kernels/context.h).
#include "kernels/context.h"

namespace weft::kernels::cpu {

// out[B*T, OC] = inp[B*T, C] @ weight[OC, C]^T + bias[OC]. bias may be nullptr.
void matmul_forward(const CpuContext& ctx, float* out, const float* inp, const float* weight,
                    const float* bias, int B, int T, int C, int OC);

// dinp[B*T, C] += dout @ weight;  dweight[OC, C] += dout^T @ inp;  dbias[OC] += sum over rows
// of dout. Any of dinp, dweight, dbias may be nullptr: that gradient is not computed (a
// zero-bubble pipeline computes dinp first and the weights' gradients later).
void matmul_backward(const CpuContext& ctx, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int B, int T, int C,
                     int OC);

// OpenBLAS's name for the kernel set it runs on this CPU ("Haswell", "SkylakeX", ...).
const char* blas_core_name();
// "SkylakeX" when this CPU has AVX-512 (F, CD, BW, DQ, VL) but OpenBLAS picked kernels without
// it, else nullptr. OpenBLAS 0.3.21 (Debian bookworm) does not know AMD Zen 4/5 and falls back
// to its AVX2 "Haswell" kernels there, at about half the sgemm speed. It reads
// OPENBLAS_CORETYPE once, when the library is loaded, so the fix is for whoever starts the
// process (a launcher, a re-exec) to set OPENBLAS_CORETYPE to this value; nothing can switch
// the kernels of a running process.
const char* blas_coretype_upgrade();

}  // namespace weft::kernels::cpu
