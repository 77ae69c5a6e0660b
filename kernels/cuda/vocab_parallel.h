#pragma once
// The vocabulary-parallel embedding and cross-entropy on the GPU, the CUDA twins of
// kernels/vocab_parallel.h (which explains the pieces and the reductions between them).
// Device pointers; work is enqueued on ctx.stream(). Logits, probabilities and embeddings are
// T (float or bf16); the loss's statistics are f32.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda {

#define WEFT_VOCAB_PARALLEL_DECLARE(T)                                                           \
  void vocab_embedding_forward(const CudaContext& ctx, T* out, const int32_t* tokens,           \
                               const T* wte, int BT, int C, int start, int local);              \
  void vocab_embedding_backward(const CudaContext& ctx, T* dwte, const T* dout,                 \
                                const int32_t* tokens, int BT, int C, int start, int local);    \
  void vocab_ce_max(const CudaContext& ctx, float* max, const T* logits, int BT, int local,     \
                    int valid);                                                                 \
  void vocab_ce_sums(const CudaContext& ctx, float* sums, const T* logits, const float* max,    \
                     const int32_t* targets, int BT, int local, int valid, int start);          \
  void vocab_ce_finish(const CudaContext& ctx, float* losses, T* probs, const T* logits,        \
                       const float* max, const float* sums, int BT, int local, int valid);      \
  void vocab_ce_backward(const CudaContext& ctx, T* dlogits, const T* probs,                    \
                         const int32_t* targets, float scale, int BT, int local, int valid,     \
                         int start);
WEFT_VOCAB_PARALLEL_DECLARE(float)
WEFT_VOCAB_PARALLEL_DECLARE(__nv_bfloat16)
#undef WEFT_VOCAB_PARALLEL_DECLARE

}  // namespace weft::kernels::cuda
