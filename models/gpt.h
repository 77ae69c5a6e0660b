#pragma once
// The GPT model on CPU: explicit forward and backward per layer (llm.c style, no autograd)
// over flat parameter and gradient buffers laid out by GptLayout. Its kernels run with the
// CpuContext it was made with (a copy: the context is a thread count). The model owns only its
// activations, sized for one micro-batch; a trainer accumulating several micro-batches runs
// forward then backward for each, and the gradients add up in the gradient buffer.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/context.h"
#include "models/gpt_activations.h"
#include "models/gpt_config.h"
#include "runtime/buffer.h"

namespace weft::models {

class Gpt {
 public:
  // Activations for micro-batches of up to `micro_batch` sequences of config.seq tokens; every
  // kernel call gets `ctx`.
  Gpt(const kernels::cpu::CpuContext& ctx, const GptConfig& config, int micro_batch);

  const GptConfig& config() const { return config_; }
  const GptLayout& layout() const { return layout_; }

  // GptLayout::init_params.
  void init_params(float* params, uint64_t seed) const;

  // inputs/targets: [B, seq] tokens, B <= micro_batch. Returns the mean cross-entropy over the
  // B x seq positions. Keeps what backward needs.
  float forward(const float* params, const int32_t* inputs, const int32_t* targets, int B);

  // Adds d(loss_scale x sum of losses)/d(params) into grads for the last forward's batch:
  // pass loss_scale = 1 / (tokens of the whole step on this rank) for a mean loss. Calls
  // on_ready(tensor index) as each tensor's gradient becomes final for this micro-batch, last
  // layer first, so data parallelism can start reducing while backward goes on.
  void backward(const float* params, float* grads, float loss_scale,
                const std::function<void(int)>& on_ready = {});

 private:
  const float* tensor(const float* base, int index) const {
    return base + layout_.tensors()[index].offset;
  }
  float* tensor(float* base, int index) const { return base + layout_.tensors()[index].offset; }

  kernels::cpu::CpuContext ctx_;
  GptConfig config_;
  GptLayout layout_;
  int max_batch_;
  int B_ = 0;                  // batch of the last forward
  std::vector<int32_t> inputs_, targets_;
  Buffer acts_;     // everything forward saves
  Buffer scratch_;  // backward's activation gradients
  GptActivations<float> a_;
  GptScratch<float> d_;
};

}  // namespace weft::models
