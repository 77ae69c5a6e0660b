#pragma once
// The GPT model on a GPU: the twin of models/gpt.h over kernels/cuda, built only with CUDA.
// Same parameter layout (GptLayout), same forward and backward, layer by layer. Parameters,
// gradients and activations are device memory of type T:
//  - float: matches the CPU model to rounding (the GPU tests compare the two);
//  - __nv_bfloat16: mixed precision as in llm.c (the trainer keeps f32 master weights and f32
//    optimizer moments; layernorm statistics, softmax sums and losses stay f32 in the kernels).
//
// Every call only enqueues work on the stream of the model's CudaContext and returns;
// mean_loss() alone waits for the GPU, since it copies the losses back.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/cuda/context.h"
#include "models/gpt_activations.h"
#include "models/gpt_config.h"
#include "runtime/cuda_buffer.h"

namespace weft::models {

template <typename T>
class CudaGpt {
 public:
  // Activations for micro-batches of up to `micro_batch` sequences, on ctx.device(); every
  // kernel call gets `ctx`, which the caller keeps alive as long as the model.
  CudaGpt(const kernels::cuda::CudaContext& ctx, const GptConfig& config, int micro_batch);

  const GptConfig& config() const { return config_; }
  const GptLayout& layout() const { return layout_; }

  // inputs/targets: [B, seq] tokens in device memory, B <= micro_batch.
  void forward(const T* params, const int32_t* inputs, const int32_t* targets, int B);
  // The mean cross-entropy of the last forward's B x seq positions. Waits for the stream.
  float mean_loss() const;
  // Adds d(loss_scale x sum of losses)/d(params) into grads for the last forward's batch, as
  // Gpt::backward does, calling on_ready(tensor) once each tensor's gradient kernels are
  // enqueued (not yet run: a consumer on another stream must wait for this one).
  void backward(const T* params, T* grads, float loss_scale,
                const std::function<void(int)>& on_ready = {});

 private:
  const T* tensor(const T* base, int index) const { return base + layout_.tensors()[index].offset; }
  T* tensor(T* base, int index) const { return base + layout_.tensors()[index].offset; }
  void zero(T* p, size_t n) const;

  const kernels::cuda::CudaContext& ctx_;
  GptConfig config_;
  GptLayout layout_;
  int max_batch_;
  int B_ = 0;                        // batch of the last forward
  const int32_t* inputs_ = nullptr;  // the last forward's tokens (the caller keeps them)
  const int32_t* targets_ = nullptr;
  CudaBuffer acts_;   // activations and backward's scratch, in T
  CudaBuffer stats_;  // layernorm statistics and losses, in f32
  GptActivations<T> a_;
  GptScratch<T> d_;
};

extern template class CudaGpt<float>;
extern template class CudaGpt<__nv_bfloat16>;

}  // namespace weft::models
