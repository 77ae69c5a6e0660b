#pragma once
// Linear layer on the GPU, the CUDA twin of kernels/matmul.h: out = inp @ weight^T + bias with
// weight[OC, C] (nn.Linear's layout). Backward ACCUMULATES (+=) into every gradient.
//
// All pointers are device memory; every call only enqueues work on ctx.stream() (the convention
// of all of kernels/cuda: the CudaContext, kernels/cuda/context.h, is the first argument). f32
// overloads compute in full f32 (no TF32), so they match the CPU kernels to rounding; bf16
// overloads read and write bf16 and sum products in f32.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

// out[B*T, OC] = inp[B*T, C] @ weight[OC, C]^T + bias[OC]. bias may be nullptr. cuBLASLt with
// the bias fused into the GEMM's epilogue.
void matmul_forward(const CudaContext& ctx, float* out, const float* inp, const float* weight,
                    const float* bias, int B, int T, int C, int OC);
void matmul_forward(const CudaContext& ctx, __nv_bfloat16* out, const __nv_bfloat16* inp,
                    const __nv_bfloat16* weight, const __nv_bfloat16* bias, int B, int T, int C,
                    int OC);

// dinp[B*T, C] += dout @ weight;  dweight[OC, C] += dout^T @ inp;  dbias[OC] += sum over rows
// of dout. Any of dinp, dweight, dbias may be nullptr: that gradient is not computed (a
// zero-bubble pipeline computes dinp first and the weights' gradients later).
// dbias is summed in f32 per column in a fixed order, so it is deterministic.
void matmul_backward(const CudaContext& ctx, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int B, int T, int C,
                     int OC);
void matmul_backward(const CudaContext& ctx, __nv_bfloat16* dinp, __nv_bfloat16* dweight,
                     __nv_bfloat16* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                     const __nv_bfloat16* weight, int B, int T, int C, int OC);

}  // namespace weft::kernels::cuda
