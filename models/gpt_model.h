#pragma once
// The GPT model, written once over the device: explicit forward and backward per layer (llm.c
// style, no autograd) over flat parameter and gradient buffers laid out by GptLayout. Ctx is
// the kernels' device context (kernels::cpu::CpuContext, or kernels::cuda::CudaContext on a
// GPU); every kernel is called unqualified with it, so the context's type picks the device's
// kernels and the model's code is the same on both. T is the element type of parameters and
// activations: float, or __nv_bfloat16 on a GPU (layernorm statistics and losses stay f32).
// Why a template over the context rather than a table of function pointers: the kernels
// already have one signature per device, so the compiler checks every call on both devices,
// and nothing is paid per call.
//
// A model is a pipeline stage with a tensor-parallel share (GptLayout's StagePlan): its layers,
// the embedding on the first stage, the final layernorm, tied head and loss on the last, and
// this tp rank's heads, MLP columns and vocabulary rows (Megatron's scheme; the conjugate
// reductions go through the TpGroup it is given). It keeps the activations of `slots`
// micro-batches in flight, one slot each, as a pipeline schedule needs; backward's scratch is
// shared, one backward running at a time.
//
// On a GPU every call only enqueues work on the context's stream (and waits for it where a tp
// reduction needs the data); mean_loss() waits, since it copies the losses back.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "models/gpt_activations.h"
#include "models/gpt_layout.h"
#include "parallel/tensor_parallel_group.h"

namespace weft::models {

template <class Ctx, typename T>
class GptModel {
 public:
  // Activations for `slots` micro-batches of up to `micro_batch` sequences each. Every kernel
  // call gets `ctx` (a GPU context must outlive the model; a CPU one is a thread count and is
  // copied). `tp` is required when layout's tp size is above 1, and must outlive the model.
  // `split_backward` keeps, per slot, what backward_weight needs (zero-bubble pipelines).
  GptModel(const Ctx& ctx, const GptLayout& layout, int micro_batch, int slots = 1,
           parallel::TpGroup* tp = nullptr, bool split_backward = false);
  // The whole model, one slot.
  GptModel(const Ctx& ctx, const GptConfig& config, int micro_batch)
      : GptModel(ctx, GptLayout(config), micro_batch) {}

  const GptConfig& config() const { return layout_.config(); }
  const GptLayout& layout() const { return layout_; }
  int slots() const { return static_cast<int>(slots_.size()); }
  // Bytes of activations, backward's scratch and kept gradients: allocated once, for every slot,
  // so this is the stage's peak.
  size_t activation_bytes() const {
    return acts_.size() + stats_.size() + tokens_.size() + deferred_.size();
  }

  // GptLayout::init_params (host memory, f32).
  void init_params(float* params, uint64_t seed) const { layout_.init_params(params, seed); }

  // Forward of B <= micro_batch sequences into `slot`, keeping what its backward needs. The
  // first stage reads `inputs` ([B, seq] tokens, the context's memory), every other stage `x`
  // ([B, seq, d_model], the previous stage's output()); the last stage reads `targets`
  // ([B, seq]) and computes the losses. Unused pointers may be null. A forward into a slot
  // whose backward has not run replaces it (evaluation runs forward only).
  void forward(int slot, const T* params, const int32_t* inputs, const int32_t* targets,
               const T* x, int B);
  void forward(const T* params, const int32_t* inputs, const int32_t* targets, int B) {
    forward(0, params, inputs, targets, nullptr, B);
  }
  // What a stage that is not the last hands on: [B, seq, d_model] of `slot`'s forward.
  const T* output(int slot) const;
  // Last stage: the mean cross-entropy of `slot`'s B x seq positions. Waits for the context.
  float mean_loss(int slot = 0) const;

  // Adds d(loss_scale x sum of losses)/d(params) into grads for `slot`'s forward, and frees the
  // slot: pass loss_scale = 1 / (tokens of the whole step) for a mean loss. A stage that is
  // not the last gets the gradient of its output in `dy` ([B, seq, d_model]). Calls
  // on_ready(tensor index) as each tensor's gradient becomes final for this micro-batch, last
  // tensor first, so data parallelism can start reducing while backward goes on.
  void backward(int slot, const T* params, T* grads, float loss_scale, const T* dy,
                const std::function<void(int)>& on_ready = {});
  void backward(const T* params, T* grads, float loss_scale,
                const std::function<void(int)>& on_ready = {}) {
    backward(0, params, grads, loss_scale, nullptr, on_ready);
  }
  // A stage that is not the first: the gradient of the last backward's input x ([B, seq,
  // d_model]), for the previous stage. Valid until the next backward.
  const T* input_grad() const { return d_.dresidual; }

  // Backward in two halves, for zero-bubble pipelines (ZB-H1), on a model built with
  // split_backward: backward_input computes what the previous stage waits for (the input's
  // gradient, and the small layernorm and embedding gradients on the way), keeping the
  // products' output gradients in the slot; backward_weight adds the products' weight and
  // bias gradients from them later, frees the slot, and calls on_ready for every tensor as
  // backward does. Together they add exactly what backward adds.
  void backward_input(int slot, const T* params, T* grads, float loss_scale, const T* dy);
  void backward_weight(int slot, T* grads, const std::function<void(int)>& on_ready = {});

 private:
  // A block's product output gradients, kept by backward_input for backward_weight.
  struct Deferred {
    T* fc_proj;  // [B, T, C]
    T* fc;       // [B, T, Hl]
    T* proj;     // [B, T, C]
    T* qkv;      // [B, T, 3Cl]
  };
  struct Slot {
    int B = 0;  // sequences of its forward; 0 when free
    bool weights_pending = false;  // backward_input ran, backward_weight not yet
    int32_t* inputs = nullptr;
    int32_t* targets = nullptr;
    GptActivations<T> a;
    std::vector<Deferred> deferred;  // per layer, with split_backward
  };
  // Where backward puts the weights' gradients: into `grads` (whole backward), or nowhere,
  // keeping the output gradients in the slot instead (backward_input).
  enum class Half { both, input };
  // The context's memory (kernels/memory.h): Buffer, or CudaBuffer on a GPU.
  using Memory = decltype(allocate(std::declval<const Ctx&>(), size_t{}));

  const T* tensor(const T* base, int index) const { return base + layout_.tensors()[index].offset; }
  T* tensor(T* base, int index) const { return base + layout_.tensors()[index].offset; }
  void zero(T* p, size_t n) const;
  // Sums `n` elements over the tp group (after the context's queued work is done).
  void tp_sum(T* p, size_t n) const;
  Slot& slot_for(int slot, const char* call);
  // The output of the stage's last layer for `s` (its input when it has no layers).
  const T* hidden(const Slot& s) const {
    return z_.layers > 0 ? s.a.layers.back().residual3 : s.a.input;
  }

  void embed(Slot& s, const T* params, const int32_t* inputs);
  void block_forward(Slot& s, int l, const T* params, const T* x);
  void head_forward(Slot& s, const T* params, const int32_t* targets);
  void head_backward(Slot& s, const T* params, T* grads, float loss_scale, Half half);
  void block_backward(Slot& s, int l, const T* params, T* grads, const T* x, Half half);
  void run_backward(int slot, const T* params, T* grads, float loss_scale, const T* dy, Half half,
                    const std::function<void(int)>& on_ready);
  // The tensors of this stage in the order backward finishes them.
  void report_ready(const std::function<void(int)>& on_ready) const;
  void embed_backward(Slot& s, T* grads);

  std::conditional_t<std::is_copy_constructible_v<Ctx>, Ctx, const Ctx&> ctx_;
  GptLayout layout_;
  StageSizes z_;
  parallel::TpGroup* tp_;
  int max_batch_;
  Memory acts_;    // every slot's activations, then backward's scratch, in T
  Memory stats_;   // layernorm statistics and losses, f32
  Memory tokens_;  // every slot's inputs and targets
  Memory deferred_;  // split_backward: every slot's Deferred
  std::vector<Slot> slots_;
  GptScratch<T> d_;
};

}  // namespace weft::models
