#pragma once
// Who holds what: the shard layout of a GPT on one rank. A rank holds a pipeline stage (a
// contiguous range of layers, with the embedding on the first stage and the final layernorm
// and the tied LM head on the last) and, within it, its tensor-parallel slice of each tensor
// (Megatron's scheme). The layout lists, for every tensor this rank holds: its global name and
// shape, the slice of it held here, and where that slice lives in the rank's flat parameter
// buffer (the gradient buffer, and each optimizer moment, have the same layout). It is the one
// description of "who holds what": initialisation, the optimizer and checkpoints read it.
//
// Tensor-parallel slices (tp ranks split a dimension in equal contiguous parts):
//   qkv.w [3, C, C], qkv.b [3, C]   dim 1: this rank's heads of q, k and v (column-parallel)
//   attn_proj.w [C, C]              dim 1: the input channels of those heads (row-parallel)
//   fc.w [4C, C], fc.b [4C]         dim 0 (column-parallel)
//   fc_proj.w [C, 4C]               dim 1 (row-parallel)
//   wte [Vp, C]                     dim 0: a range of the vocabulary (vocab-parallel)
//   everything else                 whole on every tp rank (its gradient is the same on each)
// A slice is stored row-major in its own shape (qkv.w's slice is [3, C/tp, C]), which is what
// the kernels expect of a layer with C/tp channels of attention or 4C/tp of MLP.
//
// Order in the buffer, which is forward order: wte and wpe (first stage), per layer ln1 (w, b),
// qkv (w, b), attn_proj (w, b), ln2 (w, b), fc (w, b), fc_proj (w, b), then lnf (w, b) (last
// stage) and wte again on a last stage that is not also the first (the tied head's copy: its
// gradient is summed with the first stage's, Megatron's embedding group). Backward finishes
// gradients from the end of the buffer towards the start, which is the order gradient buckets
// are cut in (parallel/bucket_plan.h).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/gpt_config.h"

namespace weft::models {

// The part of the model one rank runs.
struct StagePlan {
  int first_layer = 0;
  int layers = -1;        // -1: every layer from first_layer on
  bool first = true;      // holds the embedding (takes tokens)
  bool last = true;       // holds lnf and the head (computes the loss)
  int tp_rank = 0;
  int tp_size = 1;

  // Stage `stage` of `stages` for a model of `layers` layers cut evenly, tp rank `tp_rank` of
  // `tp_size`. Throws InvalidArgument unless stages divides layers.
  static StagePlan of(const GptConfig& config, int stage, int stages, int tp_rank, int tp_size);
};

struct ParamTensor {
  std::string name;    // "h3.fc.w", "wte", ...: the global tensor's name
  size_t offset = 0;   // first element of this rank's slice in the flat buffer
  size_t count = 0;    // elements of the slice
  bool decay = false;  // AdamW weight decay applies (2-D weights and embeddings only)
  float init_std = 0;  // N(0, init_std) at initialisation; 0 means a constant (below)
  float init_value = 0;  // the constant for init_std == 0 (1 for LayerNorm gains, else 0)
  int global_index = 0;  // position in the whole model's tensor list: seeds its init stream
  std::vector<size_t> global_shape;
  int split_dim = -1;    // the dimension tp ranks split, or -1: whole on every tp rank
  size_t split_start = 0, split_length = 0;  // this rank's part of split_dim
  // The shape of the slice held here.
  std::vector<size_t> local_shape() const;
};

// Copies the slice `t` holds out of the whole tensor `global` (t.global_shape, row-major) into
// `local` (t.local_shape()).
void copy_slice(const ParamTensor& t, const float* global, float* local);

// Index of each tensor of a block within its layer's group of kPerLayer tensors.
enum BlockParam {
  kLn1W, kLn1B, kQkvW, kQkvB, kProjW, kProjB, kLn2W, kLn2B, kFcW, kFcB, kFcProjW, kFcProjB,
  kPerLayer
};

class GptLayout {
 public:
  // The whole model on one rank.
  explicit GptLayout(const GptConfig& config) : GptLayout(config, StagePlan{}) {}
  // Throws InvalidArgument naming the number to change when the plan cannot cut this model
  // (tp must divide heads, padded vocabulary and 4 x d_model; the layers must exist).
  GptLayout(const GptConfig& config, const StagePlan& plan);

  const GptConfig& config() const { return config_; }
  const StagePlan& plan() const { return plan_; }
  int layers() const { return plan_.layers; }  // on this stage
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  size_t total() const { return total_; }
  std::vector<size_t> counts() const;
  // Every tensor from its own stream of N(0, init_std) (or its constant), derived from `seed`
  // and the tensor's global index: the same seed gives the same global weights on every rank,
  // layout and machine, each rank holding its slice of them.
  void init_params(float* params, uint64_t seed) const;

  // Indices into tensors(); -1 where this stage does not hold the tensor. `layer` counts from
  // this stage's first layer.
  int wte() const { return wte_; }        // the embedding's (first stage) or the head's copy
  int wpe() const { return plan_.first ? 1 : -1; }
  int block(int layer, BlockParam p) const { return block0_ + layer * kPerLayer + p; }
  int lnf_w() const { return plan_.last ? block0_ + plan_.layers * kPerLayer : -1; }
  int lnf_b() const { return plan_.last ? lnf_w() + 1 : -1; }

  // Sizes this rank computes with.
  int local_channels() const { return config_.d_model / plan_.tp_size; }  // attention
  int local_heads() const { return config_.heads / plan_.tp_size; }
  int local_hidden() const { return 4 * config_.d_model / plan_.tp_size; }  // MLP
  int local_vocab() const { return config_.padded_vocab / plan_.tp_size; }
  int vocab_start() const { return plan_.tp_rank * local_vocab(); }

 private:
  GptConfig config_;
  StagePlan plan_;
  std::vector<ParamTensor> tensors_;
  size_t total_ = 0;
  int wte_ = -1;
  int block0_ = 0;
};

}  // namespace weft::models
