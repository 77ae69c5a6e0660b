#include "models/gpt_cuda.h"

#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/gelu.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/residual.h"
#include "runtime/error.h"

namespace weft::models {
namespace k = weft::kernels::cuda;
template <typename T>
CudaGpt<T>::CudaGpt(const kernels::cuda::CudaContext& ctx, const GptConfig& config, int micro_batch)
    : ctx_(ctx), config_(config), layout_(config), max_batch_(micro_batch) {
  if (micro_batch < 1)
    throw Error(ErrorCode::InvalidArgument,
                "micro-batch must be at least 1 sequence, got " + std::to_string(micro_batch));
  // Counted first, then carved for real: activations and scratch in T, statistics in f32.
  Carver<T> count_acts(nullptr);
  Carver<float> count_stats(nullptr);
  carve_activations(count_acts, count_stats, config, micro_batch);
  carve_scratch(count_acts, config, micro_batch);
  acts_ = CudaBuffer(count_acts.used() * sizeof(T), ctx.device());
  stats_ = CudaBuffer(count_stats.used() * sizeof(float), ctx.device());
  Carver<T> acts(acts_.data());
  Carver<float> stats(stats_.data());
  a_ = carve_activations(acts, stats, config, micro_batch);
  d_ = carve_scratch(acts, config, micro_batch);
}

template <typename T>
void CudaGpt<T>::zero(T* p, size_t n) const {
  WEFT_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(T), ctx_.stream()));
}

template <typename T>
void CudaGpt<T>::forward(const T* params, const int32_t* inputs, const int32_t* targets, int B) {
  if (B < 1 || B > max_batch_)
    throw Error(ErrorCode::InvalidArgument, "forward: batch of " + std::to_string(B) +
                                                " sequences, but the model was built for 1.." +
                                                std::to_string(max_batch_));
  B_ = B;
  inputs_ = inputs;
  targets_ = targets;
  const int Tn = config_.seq, C = config_.d_model, NH = config_.heads, V = config_.vocab,
            Vp = config_.padded_vocab;
  const size_t BT = static_cast<size_t>(B) * Tn, BTC = BT * C;

  k::embedding_forward(ctx_, a_.encoded, inputs, tensor(params, GptLayout::kWte),
                       tensor(params, GptLayout::kWpe), B, Tn, C, V);
  const T* x = a_.encoded;
  for (int l = 0; l < config_.layers; l++) {
    const LayerActivations<T>& a = a_.layers[l];
    auto w = [&](BlockParam p) { return tensor(params, GptLayout::block(l, p)); };
    k::layernorm_forward(ctx_, a.ln1, a.ln1_mean, a.ln1_rstd, x, w(kLn1W), w(kLn1B), B, Tn, C);
    k::matmul_forward(ctx_, a.qkv, a.ln1, w(kQkvW), w(kQkvB), B, Tn, C, 3 * C);
    k::attention_forward(ctx_, a.atty, a.att, a.qkv, B, Tn, C, NH);
    k::matmul_forward(ctx_, a.residual2, a.atty, w(kProjW), w(kProjB), B, Tn, C, C);
    k::residual_forward(ctx_, a.residual2, a.residual2, x, BTC);
    k::layernorm_forward(ctx_, a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, w(kLn2W), w(kLn2B), B,
                         Tn, C);
    k::matmul_forward(ctx_, a.fch, a.ln2, w(kFcW), w(kFcB), B, Tn, C, 4 * C);
    k::gelu_forward(ctx_, a.fch_gelu, a.fch, 4 * BTC);
    k::matmul_forward(ctx_, a.residual3, a.fch_gelu, w(kFcProjW), w(kFcProjB), B, Tn, 4 * C, C);
    k::residual_forward(ctx_, a.residual3, a.residual3, a.residual2, BTC);
    x = a.residual3;
  }
  k::layernorm_forward(ctx_, a_.lnf, a_.lnf_mean, a_.lnf_rstd, x, tensor(params, layout_.lnf_w()),
                       tensor(params, layout_.lnf_b()), B, Tn, C);
  k::matmul_forward(ctx_, a_.probs, a_.lnf, tensor(params, GptLayout::kWte), nullptr, B, Tn, C, Vp);
  k::crossentropy_forward(ctx_, a_.losses, a_.probs, a_.probs, targets, static_cast<int>(BT), V,
                          Vp);
}

template <typename T>
float CudaGpt<T>::mean_loss() const {
  if (B_ == 0) throw Error(ErrorCode::InvalidArgument, "mean_loss() called before forward()");
  return k::mean_loss(ctx_, a_.losses, B_ * config_.seq);
}

template <typename T>
void CudaGpt<T>::backward(const T* params, T* grads, float loss_scale,
                          const std::function<void(int)>& on_ready) {
  if (B_ == 0) throw Error(ErrorCode::InvalidArgument, "backward() called before forward()");
  const int B = B_, Tn = config_.seq, C = config_.d_model, NH = config_.heads, V = config_.vocab,
            Vp = config_.padded_vocab;
  const size_t BT = static_cast<size_t>(B) * Tn, BTC = BT * C;
  auto ready = [&](int index) {
    if (on_ready) on_ready(index);
  };

  k::crossentropy_backward(ctx_, a_.probs, a_.probs, targets_, loss_scale, static_cast<int>(BT), V,
                           Vp);
  const T* x_last = config_.layers > 0 ? a_.layers.back().residual3 : a_.encoded;
  zero(d_.dln, BTC);
  k::matmul_backward(ctx_, d_.dln, tensor(grads, GptLayout::kWte), nullptr, a_.probs, a_.lnf,
                     tensor(params, GptLayout::kWte), B, Tn, C, Vp);
  zero(d_.dresidual, BTC);
  k::layernorm_backward(ctx_, d_.dresidual, tensor(grads, layout_.lnf_w()),
                        tensor(grads, layout_.lnf_b()), d_.dln, x_last,
                        tensor(params, layout_.lnf_w()), a_.lnf_mean, a_.lnf_rstd, B, Tn, C);
  ready(layout_.lnf_b());
  ready(layout_.lnf_w());

  for (int l = config_.layers - 1; l >= 0; l--) {
    const LayerActivations<T>& a = a_.layers[l];
    const T* x = l == 0 ? a_.encoded : a_.layers[l - 1].residual3;
    auto w = [&](BlockParam p) { return tensor(params, GptLayout::block(l, p)); };
    auto g = [&](BlockParam p) { return tensor(grads, GptLayout::block(l, p)); };
    zero(d_.dfch_gelu, 4 * BTC);
    k::matmul_backward(ctx_, d_.dfch_gelu, g(kFcProjW), g(kFcProjB), d_.dresidual, a.fch_gelu,
                       w(kFcProjW), B, Tn, 4 * C, C);
    zero(d_.dfch, 4 * BTC);
    k::gelu_backward(ctx_, d_.dfch, a.fch, d_.dfch_gelu, 4 * BTC);
    zero(d_.dln, BTC);
    k::matmul_backward(ctx_, d_.dln, g(kFcW), g(kFcB), d_.dfch, a.ln2, w(kFcW), B, Tn, C, 4 * C);
    k::layernorm_backward(ctx_, d_.dresidual, g(kLn2W), g(kLn2B), d_.dln, a.residual2, w(kLn2W),
                          a.ln2_mean, a.ln2_rstd, B, Tn, C);
    zero(d_.datty, BTC);
    k::matmul_backward(ctx_, d_.datty, g(kProjW), g(kProjB), d_.dresidual, a.atty, w(kProjW), B, Tn,
                       C, C);
    zero(d_.dqkv, 3 * BTC);
    k::attention_backward(ctx_, d_.dqkv, d_.datt, d_.datty, a.qkv, a.att, B, Tn, C, NH);
    zero(d_.dln, BTC);
    k::matmul_backward(ctx_, d_.dln, g(kQkvW), g(kQkvB), d_.dqkv, a.ln1, w(kQkvW), B, Tn, C, 3 * C);
    k::layernorm_backward(ctx_, d_.dresidual, g(kLn1W), g(kLn1B), d_.dln, x, w(kLn1W), a.ln1_mean,
                          a.ln1_rstd, B, Tn, C);
    for (int p = kPerLayer - 1; p >= 0; p--) ready(GptLayout::block(l, static_cast<BlockParam>(p)));
  }
  k::embedding_backward(ctx_, tensor(grads, GptLayout::kWte), tensor(grads, GptLayout::kWpe),
                        d_.dresidual, inputs_, B, Tn, C, V);
  ready(GptLayout::kWpe);
  ready(GptLayout::kWte);
}

template class CudaGpt<float>;
template class CudaGpt<__nv_bfloat16>;

}  // namespace weft::models
