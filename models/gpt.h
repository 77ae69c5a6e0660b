#pragma once
// The GPT model on CPU: explicit forward and backward per layer (llm.c style, no autograd)
// over flat parameter and gradient buffers laid out by GptLayout. The model owns only its
// activations, sized for one micro-batch; a trainer accumulating several micro-batches runs
// forward then backward for each, and the gradients add up in the gradient buffer.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "models/gpt_config.h"
#include "runtime/buffer.h"

namespace weft::models {

class Gpt {
 public:
  // Activations for micro-batches of up to `micro_batch` sequences of config.seq tokens.
  Gpt(const GptConfig& config, int micro_batch);

  const GptConfig& config() const { return config_; }
  const GptLayout& layout() const { return layout_; }

  // Every tensor from its own stream of N(0, init_std) (or its constant), derived from `seed`
  // and the tensor's index: the same seed gives the same weights on every rank and machine.
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
  struct LayerActs {
    float* ln1; float* ln1_mean; float* ln1_rstd;
    float* qkv; float* atty; float* att;
    float* residual2;
    float* ln2; float* ln2_mean; float* ln2_rstd;
    float* fch; float* fch_gelu;
    float* residual3;
  };
  size_t carve_layer(float* base, LayerActs* a) const;
  LayerActs layer_acts(int l) const;
  const float* tensor(const float* base, int index) const {
    return base + layout_.tensors()[index].offset;
  }
  float* tensor(float* base, int index) const { return base + layout_.tensors()[index].offset; }

  GptConfig config_;
  GptLayout layout_;
  int max_batch_;
  int B_ = 0;                  // batch of the last forward
  std::vector<int32_t> inputs_, targets_;
  Buffer acts_;                // everything forward saves
  Buffer scratch_;             // backward's activation gradients
  float* encoded_ = nullptr;   // [B, T, C]
  float* lnf_ = nullptr;       // [B, T, C]
  float* lnf_mean_ = nullptr;  // [B, T]
  float* lnf_rstd_ = nullptr;
  float* probs_ = nullptr;     // [B, T, Vp]: logits, then softmax in place, then dlogits
  float* losses_ = nullptr;    // [B, T]
  std::vector<float*> layer_base_;
  // Scratch (reused by every layer).
  float* dresidual_ = nullptr;  // [B, T, C]: gradient of the residual stream
  float* dln_ = nullptr;        // [B, T, C]
  float* datty_ = nullptr;      // [B, T, C]
  float* dqkv_ = nullptr;       // [B, T, 3C]
  float* datt_ = nullptr;       // [B, NH, T, T]
  float* dfch_ = nullptr;       // [B, T, 4C]
  float* dfch_gelu_ = nullptr;  // [B, T, 4C]
};

}  // namespace weft::models
