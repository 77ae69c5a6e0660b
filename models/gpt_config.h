#pragma once
// GPT-2-style decoder: its shape, and where each parameter tensor lives in the one flat
// parameter buffer (the gradient buffer has the same layout).
//
// Layout, in forward order: wte, wpe, then per layer ln1 (w, b), qkv (w, b), attn_proj (w, b),
// ln2 (w, b), fc (w, b), fc_proj (w, b), then the final layernorm. Backward finishes the
// gradients from the end of the buffer towards the start (lnf, the last layer, ..., the first
// layer, then the embeddings, which the tied LM head and the input both touch), which is the
// order gradient buckets are cut in (parallel/bucket_plan.h).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weft::models {

struct GptConfig {
  int layers = 4;
  int d_model = 256;
  int heads = 4;
  int seq = 128;       // maximum sequence length (rows of wpe)
  int vocab = 256;     // byte-level tokens
  int padded_vocab = 256;  // rows of wte (>= vocab; extra rows never win the softmax)

  // Throws InvalidArgument naming the flag when a value is out of range or heads does not
  // divide d_model.
  void validate() const;
  // Training FLOPs per token: 6 x (matmul weights, including the tied LM head) + the causal
  // attention's QK^T and AV products, forward and backward (6 x layers x seq x d_model: the
  // masked upper triangle is never computed, so it is not counted).
  double flops_per_token() const;
  // The parameter count (GptLayout::total()), in double so that a shape too big to lay out or
  // allocate is still measured, and said to be too big before anything is allocated.
  double parameters() const;
};

struct ParamTensor {
  std::string name;    // "h3.fc.w", "wte", ...
  size_t offset = 0;   // first element in the flat buffer
  size_t count = 0;
  bool decay = false;  // AdamW weight decay applies (2-D weights and embeddings only)
  float init_std = 0;  // N(0, init_std) at initialisation; 0 means a constant (below)
  float init_value = 0;  // the constant for init_std == 0 (1 for LayerNorm gains, else 0)
};

// Index of each tensor of a block within its layer's group of kPerLayer tensors.
enum BlockParam {
  kLn1W, kLn1B, kQkvW, kQkvB, kProjW, kProjB, kLn2W, kLn2B, kFcW, kFcB, kFcProjW, kFcProjB,
  kPerLayer
};

class GptLayout {
 public:
  explicit GptLayout(const GptConfig& config);

  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  size_t total() const { return total_; }
  std::vector<size_t> counts() const;
  // Every tensor from its own stream of N(0, init_std) (or its constant), derived from `seed`
  // and the tensor's index: the same seed gives the same weights on every rank and machine,
  // whichever device then trains them.
  void init_params(float* params, uint64_t seed) const;

  // Indices into tensors().
  static constexpr int kWte = 0;
  static constexpr int kWpe = 1;
  static int block(int layer, BlockParam p) { return 2 + layer * kPerLayer + p; }
  int lnf_w() const { return 2 + layers_ * kPerLayer; }
  int lnf_b() const { return lnf_w() + 1; }

 private:
  int layers_;
  std::vector<ParamTensor> tensors_;
  size_t total_ = 0;
};

}  // namespace weft::models
