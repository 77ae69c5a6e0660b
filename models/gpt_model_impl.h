#pragma once
// GptModel's body (models/gpt_model.h), instantiated once per device: models/gpt.cc for the
// CPU, models/gpt_cuda.cc for a GPU. It calls every kernel unqualified with the model's
// context, so the includer brings the device's kernel headers (and DeviceMemory) first.
#include <string>

#include "models/gpt_model.h"
#include "runtime/error.h"

namespace weft::models {

namespace detail {
template <typename T>
constexpr DType dtype_of() {
  return sizeof(T) == 4 ? DType::f32 : DType::bf16;
}
// The kernel, called from outside the class: inside it, the member mean_loss would hide it.
template <class Ctx>
float mean_of_losses(const Ctx& ctx, const float* losses, int BT) {
  return mean_loss(ctx, losses, BT);
}
}  // namespace detail

template <class Ctx, typename T>
GptModel<Ctx, T>::GptModel(const Ctx& ctx, const GptLayout& layout, int micro_batch, int slots,
                           parallel::TpGroup* tp, bool split_backward)
    : ctx_(ctx), layout_(layout), z_(layout), tp_(tp), max_batch_(micro_batch) {
  if (micro_batch < 1)
    throw Error(ErrorCode::InvalidArgument,
                "micro-batch must be at least 1 sequence, got " + std::to_string(micro_batch));
  if (slots < 1)
    throw Error(ErrorCode::InvalidArgument,
                "a model needs at least 1 activation slot, got " + std::to_string(slots));
  const int tp_size = layout.plan().tp_size;
  if (tp_size > 1 && (tp == nullptr || tp->size() != tp_size || tp->rank() != layout.plan().tp_rank))
    throw Error(ErrorCode::InvalidArgument,
                "a tensor-parallel model (tp rank " + std::to_string(layout.plan().tp_rank) +
                    " of " + std::to_string(tp_size) +
                    ") needs a tp group of that size in which it has that rank");
  const size_t batch = static_cast<size_t>(micro_batch);
  // Counted first, then carved for real: activations and scratch in T, statistics in f32.
  Carver<T> count_acts(nullptr);
  Carver<float> count_stats(nullptr);
  for (int k = 0; k < slots; k++) carve_activations(count_acts, count_stats, z_, batch);
  carve_scratch(count_acts, z_, batch);
  const size_t BT = batch * z_.seq;
  acts_ = allocate(ctx, count_acts.used() * sizeof(T));
  stats_ = allocate(ctx, count_stats.used() * sizeof(float));
  tokens_ = allocate(ctx, static_cast<size_t>(slots) * 2 * BT * sizeof(int32_t));
  Carver<T> acts(acts_.data());
  Carver<float> stats(stats_.data());
  Carver<int32_t> tokens(tokens_.data());
  slots_.resize(static_cast<size_t>(slots));
  for (Slot& s : slots_) {
    s.a = carve_activations(acts, stats, z_, batch);
    s.inputs = tokens.take(BT);
    s.targets = tokens.take(BT);
  }
  d_ = carve_scratch(acts, z_, batch);
  if (!split_backward) return;
  const size_t BTC = BT * z_.C;
  const size_t per_layer = 2 * BTC + BT * z_.Hl + 3 * BT * z_.Cl;
  deferred_ = allocate(
      ctx, static_cast<size_t>(slots) * z_.layers * per_layer * sizeof(T));
  Carver<T> keep(deferred_.data());
  for (Slot& s : slots_)
    for (size_t l = 0; l < z_.layers; l++)
      s.deferred.push_back({keep.take(BTC), keep.take(BT * z_.Hl), keep.take(BTC),
                            keep.take(3 * BT * z_.Cl)});
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::zero(T* p, size_t n) const {
  zero_bytes(ctx_, p, n * sizeof(T));
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::tp_sum(T* p, size_t n) const {
  if (layout_.plan().tp_size == 1) return;
  synchronize(ctx_);
  tp_->allreduce(p, n, detail::dtype_of<T>(), ReduceOp::sum);
}

template <class Ctx, typename T>
typename GptModel<Ctx, T>::Slot& GptModel<Ctx, T>::slot_for(int slot, const char* call) {
  if (slot < 0 || slot >= slots())
    throw Error(ErrorCode::InvalidArgument, std::string(call) + ": slot " + std::to_string(slot) +
                                                " of a model with " + std::to_string(slots()) +
                                                " activation slots");
  return slots_[static_cast<size_t>(slot)];
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::forward(int slot, const T* params, const int32_t* inputs,
                               const int32_t* targets, const T* x, int B) {
  Slot& s = slot_for(slot, "forward");
  if (B < 1 || B > max_batch_)
    throw Error(ErrorCode::InvalidArgument, "forward: batch of " + std::to_string(B) +
                                                " sequences, but the model was built for 1.." +
                                                std::to_string(max_batch_));
  s.B = B;
  const size_t BT = static_cast<size_t>(B) * z_.seq;
  if (z_.last) copy_bytes(ctx_, s.targets, targets, BT * sizeof(int32_t));
  if (z_.first) {
    copy_bytes(ctx_, s.inputs, inputs, BT * sizeof(int32_t));
    embed(s, params, s.inputs);
  } else {
    copy_bytes(ctx_, s.a.input, x, BT * z_.C * sizeof(T));
  }
  const T* h = s.a.input;
  for (size_t l = 0; l < z_.layers; l++) {
    block_forward(s, static_cast<int>(l), params, h);
    h = s.a.layers[l].residual3;
  }
  if (z_.last) head_forward(s, params, s.targets);
}

template <class Ctx, typename T>
const T* GptModel<Ctx, T>::output(int slot) const {
  return hidden(slots_.at(static_cast<size_t>(slot)));
}

template <class Ctx, typename T>
float GptModel<Ctx, T>::mean_loss(int slot) const {
  const Slot& s = slots_.at(static_cast<size_t>(slot));
  if (!z_.last) throw Error(ErrorCode::InvalidArgument, "mean_loss: only the last stage has one");
  if (s.B == 0) throw Error(ErrorCode::InvalidArgument, "mean_loss() called before forward()");
  return detail::mean_of_losses(ctx_, s.a.losses, s.B * static_cast<int>(z_.seq));
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::embed(Slot& s, const T* params, const int32_t* inputs) {
  const int B = s.B, Tn = static_cast<int>(z_.seq), C = static_cast<int>(z_.C),
            V = config().vocab;
  const T* wte = tensor(params, layout_.wte());
  const T* wpe = tensor(params, layout_.wpe());
  if (layout_.plan().tp_size == 1) {
    embedding_forward(ctx_, s.a.input, inputs, wte, wpe, B, Tn, C, V);
    return;
  }
  // Vocabulary-parallel: each rank looks up the tokens it holds (zero rows for the others),
  // the position embedding is added once (by tp rank 0), and the group's sum is the embedding.
  const int BT = B * Tn;
  vocab_embedding_forward(ctx_, s.a.input, inputs, wte, BT, C, layout_.vocab_start(),
                          layout_.local_vocab());
  if (layout_.plan().tp_rank == 0)
    for (int b = 0; b < B; b++) {
      T* row = s.a.input + static_cast<size_t>(b) * Tn * C;
      residual_forward(ctx_, row, row, wpe, static_cast<size_t>(Tn) * C);
    }
  tp_sum(s.a.input, static_cast<size_t>(BT) * C);
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::block_forward(Slot& s, int l, const T* params, const T* x) {
  const LayerActivations<T>& a = s.a.layers[static_cast<size_t>(l)];
  const int B = s.B, Tn = static_cast<int>(z_.seq), C = static_cast<int>(z_.C),
            Cl = static_cast<int>(z_.Cl), NHl = static_cast<int>(z_.NHl),
            Hl = static_cast<int>(z_.Hl);
  const size_t BTC = static_cast<size_t>(B) * Tn * C;
  auto w = [&](BlockParam p) { return tensor(params, layout_.block(l, p)); };
  // A row-parallel product's bias is added once, by tp rank 0, before the group's sum.
  const bool adds_bias = layout_.plan().tp_rank == 0;
  // Attention: x + proj(attention(qkv(ln1(x)))), this rank's heads only.
  layernorm_forward(ctx_, a.ln1, a.ln1_mean, a.ln1_rstd, x, w(kLn1W), w(kLn1B), B, Tn, C);
  matmul_forward(ctx_, a.qkv, a.ln1, w(kQkvW), w(kQkvB), B, Tn, C, 3 * Cl);
  attention_forward(ctx_, a.atty, a.att, a.qkv, B, Tn, Cl, NHl);
  matmul_forward(ctx_, a.residual2, a.atty, w(kProjW), adds_bias ? w(kProjB) : nullptr, B, Tn,
                 Cl, C);
  tp_sum(a.residual2, BTC);
  residual_forward(ctx_, a.residual2, a.residual2, x, BTC);
  // MLP: x + fc_proj(gelu(fc(ln2(x)))), this rank's columns of fc.
  layernorm_forward(ctx_, a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, w(kLn2W), w(kLn2B), B, Tn,
                    C);
  matmul_forward(ctx_, a.fch, a.ln2, w(kFcW), w(kFcB), B, Tn, C, Hl);
  gelu_forward(ctx_, a.fch_gelu, a.fch, static_cast<size_t>(B) * Tn * Hl);
  matmul_forward(ctx_, a.residual3, a.fch_gelu, w(kFcProjW), adds_bias ? w(kFcProjB) : nullptr,
                 B, Tn, Hl, C);
  tp_sum(a.residual3, BTC);
  residual_forward(ctx_, a.residual3, a.residual3, a.residual2, BTC);
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::head_forward(Slot& s, const T* params, const int32_t* targets) {
  GptActivations<T>& a = s.a;
  const int B = s.B, Tn = static_cast<int>(z_.seq), C = static_cast<int>(z_.C),
            Vl = static_cast<int>(z_.Vl), V = config().vocab;
  const int BT = B * Tn;
  layernorm_forward(ctx_, a.lnf, a.lnf_mean, a.lnf_rstd, hidden(s), tensor(params, layout_.lnf_w()),
                    tensor(params, layout_.lnf_b()), B, Tn, C);
  // Tied LM head: logits = lnf @ wte^T (this rank's vocabulary rows).
  matmul_forward(ctx_, a.probs, a.lnf, tensor(params, layout_.wte()), nullptr, B, Tn, C, Vl);
  if (layout_.plan().tp_size == 1) {
    crossentropy_forward(ctx_, a.losses, a.probs, a.probs, targets, BT, V, Vl);
    return;
  }
  // Vocabulary-parallel loss: the row maximum, then the sum of exp and the target's logit, each
  // reduced over the group; no rank holds more than its columns.
  const int start = layout_.vocab_start();
  const int valid = std::min(Vl, std::max(0, V - start));
  float* max = a.ce_stats;
  float* sums = a.ce_stats + BT;
  vocab_ce_max(ctx_, max, a.probs, BT, Vl, valid);
  synchronize(ctx_);
  tp_->allreduce(max, static_cast<size_t>(BT), DType::f32, ReduceOp::max);
  vocab_ce_sums(ctx_, sums, a.probs, max, targets, BT, Vl, valid, start);
  synchronize(ctx_);
  tp_->allreduce(sums, 2 * static_cast<size_t>(BT), DType::f32, ReduceOp::sum);
  vocab_ce_finish(ctx_, a.losses, a.probs, a.probs, max, sums, BT, Vl, valid);
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::backward(int slot, const T* params, T* grads, float loss_scale,
                                const T* dy, const std::function<void(int)>& on_ready) {
  run_backward(slot, params, grads, loss_scale, dy, Half::both, on_ready);
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::backward_input(int slot, const T* params, T* grads, float loss_scale,
                                      const T* dy) {
  if (slots_[0].deferred.empty() && z_.layers > 0)
    throw Error(ErrorCode::InvalidArgument,
                "backward_input: the model was built without split_backward");
  run_backward(slot, params, grads, loss_scale, dy, Half::input, {});
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::run_backward(int slot, const T* params, T* grads, float loss_scale,
                                    const T* dy, Half half,
                                    const std::function<void(int)>& on_ready) {
  Slot& s = slot_for(slot, "backward");
  if (s.B == 0 || s.weights_pending)
    throw Error(ErrorCode::InvalidArgument,
                "backward of slot " + std::to_string(slot) + " without a forward to go back through");
  const size_t BTC = static_cast<size_t>(s.B) * z_.seq * z_.C;
  auto ready = [&](int index) {
    if (on_ready) on_ready(index);
  };
  // d_.dresidual holds the gradient of the current layer's output; each layer turns it into
  // the gradient of its input (the residual path passes it through, the branches add to it).
  if (z_.last) {
    head_backward(s, params, grads, loss_scale, half);
    if (!z_.first) ready(layout_.wte());  // the head's own copy
    ready(layout_.lnf_b());
    ready(layout_.lnf_w());
  } else {
    copy_bytes(ctx_, d_.dresidual, dy, BTC * sizeof(T));
  }
  for (int l = static_cast<int>(z_.layers) - 1; l >= 0; l--) {
    const T* x = l == 0 ? s.a.input : s.a.layers[static_cast<size_t>(l) - 1].residual3;
    block_backward(s, l, params, grads, x, half);
    for (int p = kPerLayer - 1; p >= 0; p--) ready(layout_.block(l, static_cast<BlockParam>(p)));
  }
  if (z_.first) {
    embed_backward(s, grads);
    ready(layout_.wpe());
    ready(layout_.wte());
  }
  if (half == Half::both)
    s.B = 0;
  else
    s.weights_pending = true;
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::backward_weight(int slot, T* grads,
                                       const std::function<void(int)>& on_ready) {
  Slot& s = slot_for(slot, "backward_weight");
  if (!s.weights_pending)
    throw Error(ErrorCode::InvalidArgument, "backward_weight of slot " + std::to_string(slot) +
                                                " before its backward_input");
  const int B = s.B, Tn = static_cast<int>(z_.seq), C = static_cast<int>(z_.C),
            Cl = static_cast<int>(z_.Cl), Hl = static_cast<int>(z_.Hl),
            Vl = static_cast<int>(z_.Vl);
  auto ready = [&](int index) {
    if (on_ready) on_ready(index);
  };
  // The products' weight gradients from the output gradients backward_input kept (no input
  // gradient, so no weight is read), in backward's order.
  if (z_.last) {
    matmul_backward(ctx_, nullptr, tensor(grads, layout_.wte()), nullptr, s.a.probs, s.a.lnf,
                    nullptr, B, Tn, C, Vl);
    if (!z_.first) ready(layout_.wte());
    ready(layout_.lnf_b());
    ready(layout_.lnf_w());
  }
  for (int l = static_cast<int>(z_.layers) - 1; l >= 0; l--) {
    const LayerActivations<T>& a = s.a.layers[static_cast<size_t>(l)];
    const Deferred& d = s.deferred[static_cast<size_t>(l)];
    auto g = [&](BlockParam p) { return tensor(grads, layout_.block(l, p)); };
    matmul_backward(ctx_, nullptr, g(kFcProjW), g(kFcProjB), d.fc_proj, a.fch_gelu, nullptr, B,
                    Tn, Hl, C);
    matmul_backward(ctx_, nullptr, g(kFcW), g(kFcB), d.fc, a.ln2, nullptr, B, Tn, C, Hl);
    matmul_backward(ctx_, nullptr, g(kProjW), g(kProjB), d.proj, a.atty, nullptr, B, Tn, Cl, C);
    matmul_backward(ctx_, nullptr, g(kQkvW), g(kQkvB), d.qkv, a.ln1, nullptr, B, Tn, C, 3 * Cl);
    for (int p = kPerLayer - 1; p >= 0; p--) ready(layout_.block(l, static_cast<BlockParam>(p)));
  }
  if (z_.first) {
    ready(layout_.wpe());
    ready(layout_.wte());
  }
  s.weights_pending = false;
  s.B = 0;
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::head_backward(Slot& s, const T* params, T* grads, float loss_scale,
                                     Half half) {
  GptActivations<T>& a = s.a;
  const int B = s.B, Tn = static_cast<int>(z_.seq), C = static_cast<int>(z_.C),
            Vl = static_cast<int>(z_.Vl), V = config().vocab;
  const int BT = B * Tn;
  const size_t BTC = static_cast<size_t>(BT) * C;
  // The logits' gradient overwrites the probabilities in place.
  if (layout_.plan().tp_size == 1) {
    crossentropy_backward(ctx_, a.probs, a.probs, s.targets, loss_scale, BT, V, Vl);
  } else {
    const int start = layout_.vocab_start();
    const int valid = std::min(Vl, std::max(0, V - start));
    vocab_ce_backward(ctx_, a.probs, a.probs, s.targets, loss_scale, BT, Vl, valid, start);
  }
  zero(d_.dln, BTC);
  // The head's weight gradient reads the logits' gradient, which stays in the slot.
  matmul_backward(ctx_, d_.dln, half == Half::both ? tensor(grads, layout_.wte()) : nullptr,
                  nullptr, a.probs, a.lnf, tensor(params, layout_.wte()), B, Tn, C, Vl);
  tp_sum(d_.dln, BTC);  // each rank's vocabulary rows give part of it
  zero(d_.dresidual, BTC);
  layernorm_backward(ctx_, d_.dresidual, tensor(grads, layout_.lnf_w()),
                     tensor(grads, layout_.lnf_b()), d_.dln, hidden(s), tensor(params, layout_.lnf_w()), a.lnf_mean, a.lnf_rstd, B, Tn, C);
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::block_backward(Slot& s, int l, const T* params, T* grads, const T* x,
                                      Half half) {
  const LayerActivations<T>& a = s.a.layers[static_cast<size_t>(l)];
  const int B = s.B, Tn = static_cast<int>(z_.seq), C = static_cast<int>(z_.C),
            Cl = static_cast<int>(z_.Cl), NHl = static_cast<int>(z_.NHl),
            Hl = static_cast<int>(z_.Hl);
  const size_t BT = static_cast<size_t>(B) * Tn, BTC = BT * C;
  auto w = [&](BlockParam p) { return tensor(params, layout_.block(l, p)); };
  const bool both = half == Half::both;
  // A product's weight and bias gradients, now, or never (backward_input: its output gradient
  // `dout`, `n` elements, is kept for backward_weight in `keep`).
  auto g = [&](BlockParam p) { return both ? tensor(grads, layout_.block(l, p)) : nullptr; };
  // Layernorm gradients come with the input's: small, and the same kernel.
  auto g_norm = [&](BlockParam p) { return tensor(grads, layout_.block(l, p)); };
  auto keep = [&](T* kept, const T* dout, size_t n) {
    if (!both) copy_bytes(ctx_, kept, dout, n * sizeof(T));
  };
  Deferred none{};
  const Deferred& k = both ? none : s.deferred[static_cast<size_t>(l)];
  // MLP branch. The row-parallel bias's gradient is the same on every tp rank (each sees the
  // whole output gradient), so each computes it and the replicas stay equal.
  keep(k.fc_proj, d_.dresidual, BTC);
  zero(d_.dfch_gelu, BT * Hl);
  matmul_backward(ctx_, d_.dfch_gelu, g(kFcProjW), g(kFcProjB), d_.dresidual, a.fch_gelu,
                  w(kFcProjW), B, Tn, Hl, C);
  zero(d_.dfch, BT * Hl);
  gelu_backward(ctx_, d_.dfch, a.fch, d_.dfch_gelu, BT * Hl);
  keep(k.fc, d_.dfch, BT * Hl);
  zero(d_.dln, BTC);
  matmul_backward(ctx_, d_.dln, g(kFcW), g(kFcB), d_.dfch, a.ln2, w(kFcW), B, Tn, C, Hl);
  tp_sum(d_.dln, BTC);
  layernorm_backward(ctx_, d_.dresidual, g_norm(kLn2W), g_norm(kLn2B), d_.dln, a.residual2, w(kLn2W),
                     a.ln2_mean, a.ln2_rstd, B, Tn, C);
  // Attention branch.
  keep(k.proj, d_.dresidual, BTC);
  zero(d_.datty, BT * Cl);
  matmul_backward(ctx_, d_.datty, g(kProjW), g(kProjB), d_.dresidual, a.atty, w(kProjW), B, Tn,
                  Cl, C);
  zero(d_.dqkv, 3 * BT * Cl);
  attention_backward(ctx_, d_.dqkv, d_.datt, d_.datty, a.qkv, a.att, B, Tn, Cl, NHl);
  keep(k.qkv, d_.dqkv, 3 * BT * Cl);
  zero(d_.dln, BTC);
  matmul_backward(ctx_, d_.dln, g(kQkvW), g(kQkvB), d_.dqkv, a.ln1, w(kQkvW), B, Tn, C, 3 * Cl);
  tp_sum(d_.dln, BTC);
  layernorm_backward(ctx_, d_.dresidual, g_norm(kLn1W), g_norm(kLn1B), d_.dln, x, w(kLn1W), a.ln1_mean,
                     a.ln1_rstd, B, Tn, C);
}

template <class Ctx, typename T>
void GptModel<Ctx, T>::embed_backward(Slot& s, T* grads) {
  const int B = s.B, Tn = static_cast<int>(z_.seq), C = static_cast<int>(z_.C),
            V = config().vocab;
  T* dwte = tensor(grads, layout_.wte());
  T* dwpe = tensor(grads, layout_.wpe());
  if (layout_.plan().tp_size == 1) {
    embedding_backward(ctx_, dwte, dwpe, d_.dresidual, s.inputs, B, Tn, C, V);
    return;
  }
  // Every tp rank holds the whole wpe and sees the whole gradient: each adds it.
  vocab_embedding_backward(ctx_, dwte, d_.dresidual, s.inputs, B * Tn, C, layout_.vocab_start(),
                           layout_.local_vocab());
  for (int b = 0; b < B; b++)
    residual_forward(ctx_, dwpe, dwpe, d_.dresidual + static_cast<size_t>(b) * Tn * C,
                     static_cast<size_t>(Tn) * C);
}

}  // namespace weft::models
