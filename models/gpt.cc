#include "models/gpt.h"

#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/context.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"
#include "runtime/error.h"

namespace weft::models {
namespace k = weft::kernels::cpu;
namespace {

void zero(float* p, size_t n) { std::memset(p, 0, n * sizeof(float)); }

}  // namespace

Gpt::Gpt(const kernels::cpu::CpuContext& ctx, const GptConfig& config, int micro_batch)
    : ctx_(ctx), config_(config), layout_(config), max_batch_(micro_batch) {
  if (micro_batch < 1)
    throw Error(ErrorCode::InvalidArgument,
                "micro-batch must be at least 1 sequence, got " + std::to_string(micro_batch));
  // Counted first, then carved for real out of one allocation each.
  Carver<float> count(nullptr), count_scratch(nullptr);
  carve_activations(count, count, config, micro_batch);
  carve_scratch(count_scratch, config, micro_batch);
  acts_ = Buffer(count.used() * sizeof(float));
  scratch_ = Buffer(count_scratch.used() * sizeof(float));
  Carver<float> acts(acts_.data()), scratch(scratch_.data());
  a_ = carve_activations(acts, acts, config, micro_batch);
  d_ = carve_scratch(scratch, config, micro_batch);
  const size_t BT = static_cast<size_t>(micro_batch) * config.seq;
  inputs_.resize(BT);
  targets_.resize(BT);
}

void Gpt::init_params(float* params, uint64_t seed) const { layout_.init_params(params, seed); }

float Gpt::forward(const float* params, const int32_t* inputs, const int32_t* targets, int B) {
  if (B < 1 || B > max_batch_)
    throw Error(ErrorCode::InvalidArgument, "forward: batch of " + std::to_string(B) +
                                                " sequences, but the model was built for 1.." +
                                                std::to_string(max_batch_));
  B_ = B;
  const int T = config_.seq, C = config_.d_model, NH = config_.heads, V = config_.vocab,
            Vp = config_.padded_vocab;
  const size_t BT = static_cast<size_t>(B) * T, BTC = BT * C;
  std::memcpy(inputs_.data(), inputs, BT * sizeof(int32_t));
  std::memcpy(targets_.data(), targets, BT * sizeof(int32_t));

  k::embedding_forward(ctx_, a_.encoded, inputs, tensor(params, GptLayout::kWte),
                       tensor(params, GptLayout::kWpe), B, T, C, V);
  const float* x = a_.encoded;
  for (int l = 0; l < config_.layers; l++) {
    const LayerActivations<float>& a = a_.layers[l];
    auto w = [&](BlockParam p) { return tensor(params, GptLayout::block(l, p)); };
    // Attention: x + proj(attention(qkv(ln1(x)))).
    k::layernorm_forward(ctx_, a.ln1, a.ln1_mean, a.ln1_rstd, x, w(kLn1W), w(kLn1B), B, T, C);
    k::matmul_forward(ctx_, a.qkv, a.ln1, w(kQkvW), w(kQkvB), B, T, C, 3 * C);
    k::attention_forward(ctx_, a.atty, a.att, a.qkv, B, T, C, NH);
    k::matmul_forward(ctx_, a.residual2, a.atty, w(kProjW), w(kProjB), B, T, C, C);
    k::residual_forward(ctx_, a.residual2, a.residual2, x, BTC);
    // MLP: x + fc_proj(gelu(fc(ln2(x)))).
    k::layernorm_forward(ctx_, a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, w(kLn2W), w(kLn2B), B, T,
                         C);
    k::matmul_forward(ctx_, a.fch, a.ln2, w(kFcW), w(kFcB), B, T, C, 4 * C);
    k::gelu_forward(ctx_, a.fch_gelu, a.fch, 4 * BTC);
    k::matmul_forward(ctx_, a.residual3, a.fch_gelu, w(kFcProjW), w(kFcProjB), B, T, 4 * C, C);
    k::residual_forward(ctx_, a.residual3, a.residual3, a.residual2, BTC);
    x = a.residual3;
  }
  k::layernorm_forward(ctx_, a_.lnf, a_.lnf_mean, a_.lnf_rstd, x, tensor(params, layout_.lnf_w()),
                       tensor(params, layout_.lnf_b()), B, T, C);
  // Tied LM head: logits = lnf @ wte^T.
  k::matmul_forward(ctx_, a_.probs, a_.lnf, tensor(params, GptLayout::kWte), nullptr, B, T, C, Vp);
  return k::crossentropy_forward(ctx_, a_.losses, a_.probs, a_.probs, targets, static_cast<int>(BT),
                                 V, Vp);
}

void Gpt::backward(const float* params, float* grads, float loss_scale,
                   const std::function<void(int)>& on_ready) {
  if (B_ == 0) throw Error(ErrorCode::InvalidArgument, "backward() called before forward()");
  const int B = B_, T = config_.seq, C = config_.d_model, NH = config_.heads, V = config_.vocab,
            Vp = config_.padded_vocab;
  const size_t BT = static_cast<size_t>(B) * T, BTC = BT * C;
  auto ready = [&](int index) {
    if (on_ready) on_ready(index);
  };

  // Head: the logits' gradient overwrites the probabilities in place.
  k::crossentropy_backward(ctx_, a_.probs, a_.probs, targets_.data(), loss_scale,
                           static_cast<int>(BT), V, Vp);
  const float* x_last = config_.layers > 0 ? a_.layers.back().residual3 : a_.encoded;
  zero(d_.dln, BTC);
  k::matmul_backward(ctx_, d_.dln, tensor(grads, GptLayout::kWte), nullptr, a_.probs, a_.lnf,
                     tensor(params, GptLayout::kWte), B, T, C, Vp);
  zero(d_.dresidual, BTC);
  k::layernorm_backward(ctx_, d_.dresidual, tensor(grads, layout_.lnf_w()),
                        tensor(grads, layout_.lnf_b()), d_.dln, x_last,
                        tensor(params, layout_.lnf_w()), a_.lnf_mean, a_.lnf_rstd, B, T, C);
  ready(layout_.lnf_b());
  ready(layout_.lnf_w());

  // d_.dresidual holds the gradient of the current layer's output; each layer turns it into the
  // gradient of its input (the residual path passes it through, the branches add to it).
  for (int l = config_.layers - 1; l >= 0; l--) {
    const LayerActivations<float>& a = a_.layers[l];
    const float* x = l == 0 ? a_.encoded : a_.layers[l - 1].residual3;
    auto w = [&](BlockParam p) { return tensor(params, GptLayout::block(l, p)); };
    auto g = [&](BlockParam p) { return tensor(grads, GptLayout::block(l, p)); };
    // MLP branch.
    zero(d_.dfch_gelu, 4 * BTC);
    k::matmul_backward(ctx_, d_.dfch_gelu, g(kFcProjW), g(kFcProjB), d_.dresidual, a.fch_gelu,
                       w(kFcProjW), B, T, 4 * C, C);
    zero(d_.dfch, 4 * BTC);
    k::gelu_backward(ctx_, d_.dfch, a.fch, d_.dfch_gelu, 4 * BTC);
    zero(d_.dln, BTC);
    k::matmul_backward(ctx_, d_.dln, g(kFcW), g(kFcB), d_.dfch, a.ln2, w(kFcW), B, T, C, 4 * C);
    k::layernorm_backward(ctx_, d_.dresidual, g(kLn2W), g(kLn2B), d_.dln, a.residual2, w(kLn2W),
                          a.ln2_mean, a.ln2_rstd, B, T, C);
    // Attention branch.
    zero(d_.datty, BTC);
    k::matmul_backward(ctx_, d_.datty, g(kProjW), g(kProjB), d_.dresidual, a.atty, w(kProjW), B, T,
                       C, C);
    zero(d_.dqkv, 3 * BTC);
    k::attention_backward(ctx_, d_.dqkv, d_.datt, d_.datty, a.qkv, a.att, B, T, C, NH);
    zero(d_.dln, BTC);
    k::matmul_backward(ctx_, d_.dln, g(kQkvW), g(kQkvB), d_.dqkv, a.ln1, w(kQkvW), B, T, C, 3 * C);
    k::layernorm_backward(ctx_, d_.dresidual, g(kLn1W), g(kLn1B), d_.dln, x, w(kLn1W), a.ln1_mean,
                          a.ln1_rstd, B, T, C);
    for (int p = kPerLayer - 1; p >= 0; p--) ready(GptLayout::block(l, static_cast<BlockParam>(p)));
  }
  k::embedding_backward(ctx_, tensor(grads, GptLayout::kWte), tensor(grads, GptLayout::kWpe),
                        d_.dresidual, inputs_.data(), B, T, C, V);
  ready(GptLayout::kWpe);
  ready(GptLayout::kWte);
}

}  // namespace weft::models
