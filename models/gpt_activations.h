#pragma once
// The GPT model's working memory (models/gpt_model.h, T = float, or bf16 on a GPU): what
// forward keeps for backward (activations in T; layernorm statistics and losses always in f32),
// backward's scratch, and how the model carves them out of a few big allocations. Sizes are a
// stage's (its layers, its tensor-parallel share of heads, MLP and vocabulary: GptLayout).
#include <cstddef>
#include <vector>

#include "models/gpt_layout.h"

namespace weft::models {

template <typename T>
struct LayerActivations {
  T* ln1; float* ln1_mean; float* ln1_rstd;   // [B, T, C], [B, T], [B, T]
  T* qkv; T* atty; T* att;                     // [B, T, 3Cl], [B, T, Cl], [B, NHl, T, T]
  T* residual2;                                // [B, T, C]
  T* ln2; float* ln2_mean; float* ln2_rstd;   // as ln1
  T* fch; T* fch_gelu;                         // [B, T, Hl]
  T* residual3;                                // [B, T, C]
};

// Hands out consecutive pieces of one allocation. With a null base it only counts, which is how
// a model sizes its buffers before carving them for real.
template <typename E>
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<E*>(base)) {}
  E* take(size_t n) {
    E* r = base_ ? base_ + used_ : nullptr;
    used_ += n;
    return r;
  }
  size_t used() const { return used_; }

 private:
  E* base_;
  size_t used_ = 0;
};

// Sizes a stage computes with: C the residual stream's channels, Cl and NHl this tp rank's
// channels and heads of attention, Hl its MLP width, Vl its vocabulary columns.
struct StageSizes {
  size_t C, Cl, NHl, Hl, Vl, seq, layers;
  bool first, last;
  // From the shapes alone (no layout is built, so a shape too big to lay out is measured too).
  StageSizes(const GptConfig& c, const StagePlan& p)
      : C(static_cast<size_t>(c.d_model)),
        Cl(static_cast<size_t>(c.d_model / p.tp_size)),
        NHl(static_cast<size_t>(c.heads / p.tp_size)),
        Hl(static_cast<size_t>(4 * static_cast<size_t>(c.d_model) / p.tp_size)),
        Vl(static_cast<size_t>(c.padded_vocab / p.tp_size)),
        seq(static_cast<size_t>(c.seq)),
        layers(static_cast<size_t>(p.layers < 0 ? c.layers - p.first_layer : p.layers)),
        first(p.first),
        last(p.last) {}
  explicit StageSizes(const GptLayout& l) : StageSizes(l.config(), l.plan()) {}
};

// One block's activations for `batch` sequences. `acts` and `stats` may be the same carver
// (T = float, one allocation).
template <typename T>
LayerActivations<T> carve_layer(Carver<T>& acts, Carver<float>& stats, const StageSizes& z,
                                size_t batch) {
  const size_t BT = batch * z.seq, BTC = BT * z.C;
  LayerActivations<T> a;
  a.ln1 = acts.take(BTC);
  a.ln1_mean = stats.take(BT);
  a.ln1_rstd = stats.take(BT);
  a.qkv = acts.take(3 * BT * z.Cl);
  a.atty = acts.take(BT * z.Cl);
  a.att = acts.take(batch * z.NHl * z.seq * z.seq);
  a.residual2 = acts.take(BTC);
  a.ln2 = acts.take(BTC);
  a.ln2_mean = stats.take(BT);
  a.ln2_rstd = stats.take(BT);
  a.fch = acts.take(BT * z.Hl);
  a.fch_gelu = acts.take(BT * z.Hl);
  a.residual3 = acts.take(BTC);
  return a;
}

// Everything forward keeps for one micro-batch of up to `batch` sequences. The head's part
// (lnf .. losses) exists on the last stage only (null elsewhere).
template <typename T>
struct GptActivations {
  T* input;          // [B, T, C]: the embedding's output, or the previous stage's output
  T* lnf;            // [B, T, C]
  float* lnf_mean;   // [B, T]
  float* lnf_rstd;
  T* probs;          // [B, T, Vl]: logits, then softmax in place, then dlogits
  float* losses;     // [B, T]
  float* ce_stats;   // [3, B, T]: the vocabulary-parallel loss's max, sum of exp, target logit
  std::vector<LayerActivations<T>> layers;
};

template <typename T>
GptActivations<T> carve_activations(Carver<T>& acts, Carver<float>& stats, const StageSizes& z,
                                    size_t batch) {
  const size_t BT = batch * z.seq, BTC = BT * z.C;
  GptActivations<T> a{};
  a.input = acts.take(BTC);
  if (z.last) {
    a.lnf = acts.take(BTC);
    a.lnf_mean = stats.take(BT);
    a.lnf_rstd = stats.take(BT);
    a.probs = acts.take(BT * z.Vl);
    a.losses = stats.take(BT);
    a.ce_stats = stats.take(3 * BT);
  }
  for (size_t l = 0; l < z.layers; l++) a.layers.push_back(carve_layer(acts, stats, z, batch));
  return a;
}

// Backward's activation gradients, reused by every layer.
template <typename T>
struct GptScratch {
  T* dresidual;  // [B, T, C]: gradient of the residual stream
  T* dln;        // [B, T, C]
  T* datty;      // [B, T, C]
  T* dqkv;       // [B, T, 3Cl]
  T* datt;       // [B, NHl, T, T]
  T* dfch;       // [B, T, Hl]
  T* dfch_gelu;  // [B, T, Hl]
};

template <typename T>
GptScratch<T> carve_scratch(Carver<T>& acts, const StageSizes& z, size_t batch) {
  const size_t BT = batch * z.seq, BTC = BT * z.C;
  GptScratch<T> s;
  s.dresidual = acts.take(BTC);
  s.dln = acts.take(BTC);
  s.datty = acts.take(BT * z.Cl);
  s.dqkv = acts.take(3 * BT * z.Cl);
  s.datt = acts.take(batch * z.NHl * z.seq * z.seq);
  s.dfch = acts.take(BT * z.Hl);
  s.dfch_gelu = acts.take(BT * z.Hl);
  return s;
}

// What the carvers above take for `slots` micro-batches of `batch` sequences each, counted in
// double so that shapes too big to allocate are still measured (a trainer says so before
// allocating): elements of T (activations and backward's scratch) and f32 statistics.
struct GptMemory {
  double elements = 0;
  double statistics = 0;
};
inline GptMemory gpt_memory(const StageSizes& z, double batch, int slots = 1) {
  const double BT = batch * z.seq, BTC = BT * z.C, att = batch * z.NHl * z.seq * z.seq;
  const double layer = 4 * BTC + 4 * BT * z.Cl + att + 2 * BT * z.Hl;
  GptMemory m;
  m.elements = slots * (BTC + (z.last ? BTC + BT * z.Vl : 0) + z.layers * layer)  // activations
               + 2 * BTC + 4 * BT * z.Cl + att + 2 * BT * z.Hl;                   // scratch
  m.statistics = slots * ((z.last ? 6 * BT : 0) + z.layers * 4 * BT);
  return m;
}

}  // namespace weft::models
