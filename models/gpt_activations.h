#pragma once
// The GPT model's working memory, shared by the CPU model (gpt.h, T = float) and the GPU one
// (gpt_cuda.h, T = float or bf16): what forward keeps for backward (activations in T; layernorm
// statistics and losses always in f32), backward's scratch, and how both models carve them out
// of a few big allocations.
#include <cstddef>
#include <vector>

#include "models/gpt_config.h"

namespace weft::models {

template <typename T>
struct LayerActivations {
  T* ln1; float* ln1_mean; float* ln1_rstd;   // [B, T, C], [B, T], [B, T]
  T* qkv; T* atty; T* att;                     // [B, T, 3C], [B, T, C], [B, NH, T, T]
  T* residual2;                                // [B, T, C]
  T* ln2; float* ln2_mean; float* ln2_rstd;   // as ln1
  T* fch; T* fch_gelu;                         // [B, T, 4C]
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

// One block's activations for `batch` sequences of `seq` tokens, `channels` wide, `heads`
// heads. `acts` and `stats` may be the same carver (T = float, one allocation).
template <typename T>
LayerActivations<T> carve_layer(Carver<T>& acts, Carver<float>& stats, size_t batch, size_t seq,
                                size_t channels, size_t heads) {
  const size_t BT = batch * seq, BTC = BT * channels;
  LayerActivations<T> a;
  a.ln1 = acts.take(BTC);
  a.ln1_mean = stats.take(BT);
  a.ln1_rstd = stats.take(BT);
  a.qkv = acts.take(3 * BTC);
  a.atty = acts.take(BTC);
  a.att = acts.take(batch * heads * seq * seq);
  a.residual2 = acts.take(BTC);
  a.ln2 = acts.take(BTC);
  a.ln2_mean = stats.take(BT);
  a.ln2_rstd = stats.take(BT);
  a.fch = acts.take(4 * BTC);
  a.fch_gelu = acts.take(4 * BTC);
  a.residual3 = acts.take(BTC);
  return a;
}

// Everything forward keeps, for micro-batches of up to `batch` sequences.
template <typename T>
struct GptActivations {
  T* encoded;        // [B, T, C]: token + position embedding
  T* lnf;            // [B, T, C]
  float* lnf_mean;   // [B, T]
  float* lnf_rstd;
  T* probs;          // [B, T, Vp]: logits, then softmax in place, then dlogits
  float* losses;     // [B, T]
  std::vector<LayerActivations<T>> layers;
};

template <typename T>
GptActivations<T> carve_activations(Carver<T>& acts, Carver<float>& stats, const GptConfig& c,
                                    size_t batch) {
  const size_t BT = batch * c.seq, BTC = BT * c.d_model;
  GptActivations<T> a;
  a.encoded = acts.take(BTC);
  a.lnf = acts.take(BTC);
  a.lnf_mean = stats.take(BT);
  a.lnf_rstd = stats.take(BT);
  a.probs = acts.take(BT * c.padded_vocab);
  a.losses = stats.take(BT);
  for (int l = 0; l < c.layers; l++)
    a.layers.push_back(carve_layer(acts, stats, batch, c.seq, c.d_model, c.heads));
  return a;
}

// Backward's activation gradients, reused by every layer.
template <typename T>
struct GptScratch {
  T* dresidual;  // [B, T, C]: gradient of the residual stream
  T* dln;        // [B, T, C]
  T* datty;      // [B, T, C]
  T* dqkv;       // [B, T, 3C]
  T* datt;       // [B, NH, T, T]
  T* dfch;       // [B, T, 4C]
  T* dfch_gelu;  // [B, T, 4C]
};

template <typename T>
GptScratch<T> carve_scratch(Carver<T>& acts, const GptConfig& c, size_t batch) {
  const size_t BT = batch * c.seq, BTC = BT * c.d_model;
  GptScratch<T> s;
  s.dresidual = acts.take(BTC);
  s.dln = acts.take(BTC);
  s.datty = acts.take(BTC);
  s.dqkv = acts.take(3 * BTC);
  s.datt = acts.take(batch * c.heads * c.seq * c.seq);
  s.dfch = acts.take(4 * BTC);
  s.dfch_gelu = acts.take(4 * BTC);
  return s;
}

// What the carvers above take for micro-batches of `batch` sequences, counted in double so that
// shapes too big to allocate are still measured (a trainer says so before allocating):
// elements of T (activations and backward's scratch) and f32 statistics.
struct GptMemory {
  double elements = 0;
  double statistics = 0;
};
inline GptMemory gpt_memory(const GptConfig& c, double batch) {
  const double BT = batch * c.seq, BTC = BT * c.d_model, att = batch * c.heads * c.seq * c.seq;
  GptMemory m;
  m.elements = 2 * BTC + BT * c.padded_vocab + c.layers * (16 * BTC + att)  // activations
               + 14 * BTC + att;                                            // scratch
  m.statistics = 3 * BT + c.layers * 4 * BT;
  return m;
}

}  // namespace weft::models
