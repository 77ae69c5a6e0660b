#pragma once
// The GPT model on a GPU: GptModel (models/gpt_model.h) over kernels::cuda, built only with
// CUDA. Parameters, gradients and activations are device memory of type T:
//  - float: matches the CPU model to rounding (the GPU tests compare the two);
//  - __nv_bfloat16: mixed precision as in llm.c (the trainer keeps f32 master weights and f32
//    optimizer moments; layernorm statistics, softmax sums and losses stay f32 in the kernels).
#include <cuda_bf16.h>

#include "kernels/cuda/context.h"
#include "kernels/cuda/memory.h"
#include "models/gpt_model.h"

namespace weft::models {

template <typename T>
using CudaGpt = GptModel<kernels::cuda::CudaContext, T>;
extern template class GptModel<kernels::cuda::CudaContext, float>;
extern template class GptModel<kernels::cuda::CudaContext, __nv_bfloat16>;

}  // namespace weft::models
