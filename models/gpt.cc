#include "models/gpt.h"

#include <cmath>
#include <cstring>

#include "kernels/attention.h"
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

// SplitMix64: a tiny generator with a fixed, documented sequence, so weights do not depend on
// the standard library's distribution implementations.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1]: never 0, so the log below is finite.
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
  // Box-Muller, both outputs used.
  void normal(float* out, size_t n, float std) {
    constexpr double kTwoPi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
      double r = std::sqrt(-2.0 * std::log(uniform())), a = kTwoPi * uniform();
      out[i] = static_cast<float>(r * std::cos(a) * std);
      if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(a) * std);
    }
  }

 private:
  uint64_t state_;
};

void zero(float* p, size_t n) { std::memset(p, 0, n * sizeof(float)); }

}  // namespace

Gpt::Gpt(const GptConfig& config, int micro_batch)
    : config_(config), layout_(config), max_batch_(micro_batch) {
  if (micro_batch < 1)
    throw Error(ErrorCode::InvalidArgument,
                "micro-batch must be at least 1 sequence, got " + std::to_string(micro_batch));
  const size_t B = micro_batch, T = config.seq, C = config.d_model, NH = config.heads,
               Vp = config.padded_vocab, L = config.layers;
  const size_t BT = B * T, BTC = BT * C, att = B * NH * T * T;
  const size_t per_layer = carve_layer(nullptr, nullptr);
  const size_t total = BTC + BTC + 2 * BT + BT * Vp + BT + L * per_layer;
  acts_ = Buffer(total * sizeof(float));
  float* p = acts_.as<float>();
  auto take = [&p](size_t n) {
    float* r = p;
    p += n;
    return r;
  };
  encoded_ = take(BTC);
  lnf_ = take(BTC);
  lnf_mean_ = take(BT);
  lnf_rstd_ = take(BT);
  probs_ = take(BT * Vp);
  losses_ = take(BT);
  for (size_t l = 0; l < L; l++) layer_base_.push_back(take(per_layer));

  scratch_ = Buffer((3 * BTC + 3 * BTC + att + 8 * BTC) * sizeof(float));
  p = scratch_.as<float>();
  dresidual_ = take(BTC);
  dln_ = take(BTC);
  datty_ = take(BTC);
  dqkv_ = take(3 * BTC);
  datt_ = take(att);
  dfch_ = take(4 * BTC);
  dfch_gelu_ = take(4 * BTC);
  inputs_.resize(BT);
  targets_.resize(BT);
}

// One layer's saved activations, carved from `base` in a fixed order. Returns the floats used;
// with base == nullptr it only counts, which is how the constructor sizes each layer's slice.
size_t Gpt::carve_layer(float* base, LayerActs* a) const {
  const size_t B = max_batch_, T = config_.seq, C = config_.d_model, NH = config_.heads;
  const size_t BT = B * T, BTC = BT * C;
  size_t used = 0;
  auto take = [&](size_t n) {
    float* r = base ? base + used : nullptr;
    used += n;
    return r;
  };
  LayerActs acts{};
  acts.ln1 = take(BTC);
  acts.ln1_mean = take(BT);
  acts.ln1_rstd = take(BT);
  acts.qkv = take(3 * BTC);
  acts.atty = take(BTC);
  acts.att = take(B * NH * T * T);
  acts.residual2 = take(BTC);
  acts.ln2 = take(BTC);
  acts.ln2_mean = take(BT);
  acts.ln2_rstd = take(BT);
  acts.fch = take(4 * BTC);
  acts.fch_gelu = take(4 * BTC);
  acts.residual3 = take(BTC);
  if (a) *a = acts;
  return used;
}

Gpt::LayerActs Gpt::layer_acts(int l) const {
  LayerActs a;
  carve_layer(layer_base_[l], &a);
  return a;
}

void Gpt::init_params(float* params, uint64_t seed) const {
  const auto& tensors = layout_.tensors();
  for (size_t i = 0; i < tensors.size(); i++) {
    const ParamTensor& t = tensors[i];
    float* p = params + t.offset;
    if (t.init_std > 0) {
      Random rng(seed * 0x100000001b3ull + i);
      rng.normal(p, t.count, t.init_std);
    } else {
      for (size_t j = 0; j < t.count; j++) p[j] = t.init_value;
    }
  }
}

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

  k::embedding_forward(encoded_, inputs, tensor(params, GptLayout::kWte),
                       tensor(params, GptLayout::kWpe), B, T, C, V);
  const float* x = encoded_;
  for (int l = 0; l < config_.layers; l++) {
    LayerActs a = layer_acts(l);
    auto w = [&](BlockParam p) { return tensor(params, GptLayout::block(l, p)); };
    // Attention: x + proj(attention(qkv(ln1(x)))).
    k::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, w(kLn1W), w(kLn1B), B, T, C);
    k::matmul_forward(a.qkv, a.ln1, w(kQkvW), w(kQkvB), B, T, C, 3 * C);
    k::attention_forward(a.atty, a.att, a.qkv, B, T, C, NH);
    k::matmul_forward(a.residual2, a.atty, w(kProjW), w(kProjB), B, T, C, C);
    k::residual_forward(a.residual2, a.residual2, x, BTC);
    // MLP: x + fc_proj(gelu(fc(ln2(x)))).
    k::layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, w(kLn2W), w(kLn2B), B, T,
                         C);
    k::matmul_forward(a.fch, a.ln2, w(kFcW), w(kFcB), B, T, C, 4 * C);
    k::gelu_forward(a.fch_gelu, a.fch, 4 * BTC);
    k::matmul_forward(a.residual3, a.fch_gelu, w(kFcProjW), w(kFcProjB), B, T, 4 * C, C);
    k::residual_forward(a.residual3, a.residual3, a.residual2, BTC);
    x = a.residual3;
  }
  k::layernorm_forward(lnf_, lnf_mean_, lnf_rstd_, x, tensor(params, layout_.lnf_w()),
                       tensor(params, layout_.lnf_b()), B, T, C);
  // Tied LM head: logits = lnf @ wte^T.
  k::matmul_forward(probs_, lnf_, tensor(params, GptLayout::kWte), nullptr, B, T, C, Vp);
  return k::crossentropy_forward(losses_, probs_, probs_, targets, static_cast<int>(BT), V, Vp);
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
  k::crossentropy_backward(probs_, probs_, targets_.data(), loss_scale, static_cast<int>(BT), V,
                           Vp);
  const float* x_last = config_.layers > 0 ? layer_acts(config_.layers - 1).residual3 : encoded_;
  zero(dln_, BTC);
  k::matmul_backward(dln_, tensor(grads, GptLayout::kWte), nullptr, probs_, lnf_,
                     tensor(params, GptLayout::kWte), B, T, C, Vp);
  zero(dresidual_, BTC);
  k::layernorm_backward(dresidual_, tensor(grads, layout_.lnf_w()), tensor(grads, layout_.lnf_b()),
                        dln_, x_last, tensor(params, layout_.lnf_w()), lnf_mean_, lnf_rstd_, B, T,
                        C);
  ready(layout_.lnf_b());
  ready(layout_.lnf_w());

  // dresidual_ holds the gradient of the current layer's output; each layer turns it into the
  // gradient of its input (the residual path passes it through, the branches add to it).
  for (int l = config_.layers - 1; l >= 0; l--) {
    LayerActs a = layer_acts(l);
    const float* x = l == 0 ? encoded_ : layer_acts(l - 1).residual3;
    auto w = [&](BlockParam p) { return tensor(params, GptLayout::block(l, p)); };
    auto g = [&](BlockParam p) { return tensor(grads, GptLayout::block(l, p)); };
    // MLP branch.
    zero(dfch_gelu_, 4 * BTC);
    k::matmul_backward(dfch_gelu_, g(kFcProjW), g(kFcProjB), dresidual_, a.fch_gelu, w(kFcProjW),
                       B, T, 4 * C, C);
    zero(dfch_, 4 * BTC);
    k::gelu_backward(dfch_, a.fch, dfch_gelu_, 4 * BTC);
    zero(dln_, BTC);
    k::matmul_backward(dln_, g(kFcW), g(kFcB), dfch_, a.ln2, w(kFcW), B, T, C, 4 * C);
    k::layernorm_backward(dresidual_, g(kLn2W), g(kLn2B), dln_, a.residual2, w(kLn2W), a.ln2_mean,
                          a.ln2_rstd, B, T, C);
    // Attention branch.
    zero(datty_, BTC);
    k::matmul_backward(datty_, g(kProjW), g(kProjB), dresidual_, a.atty, w(kProjW), B, T, C, C);
    zero(dqkv_, 3 * BTC);
    k::attention_backward(dqkv_, datt_, datty_, a.qkv, a.att, B, T, C, NH);
    zero(dln_, BTC);
    k::matmul_backward(dln_, g(kQkvW), g(kQkvB), dqkv_, a.ln1, w(kQkvW), B, T, C, 3 * C);
    k::layernorm_backward(dresidual_, g(kLn1W), g(kLn1B), dln_, x, w(kLn1W), a.ln1_mean,
                          a.ln1_rstd, B, T, C);
    for (int p = kPerLayer - 1; p >= 0; p--) ready(GptLayout::block(l, static_cast<BlockParam>(p)));
  }
  k::embedding_backward(tensor(grads, GptLayout::kWte), tensor(grads, GptLayout::kWpe), dresidual_,
                        inputs_.data(), B, T, C, V);
  ready(GptLayout::kWpe);
  ready(GptLayout::kWte);
}

}  // namespace weft::models
