#include "parallel/cuda_sharded_adamw.h"

#include <type_traits>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/grad_norm.h"

namespace weft::parallel {
namespace k = weft::kernels::cuda;

template <typename T>
CudaShardedAdamW<T>::CudaShardedAdamW(const kernels::cuda::CudaContext& ctx,
                                      const std::vector<ShardRange>& owned,
                                      const std::vector<DecaySpan>& spans, AdamWOptions options)
    : ctx_(ctx),
      owned_(owned),
      segments_(adamw_segments(owned, spans)),
      options_(options),
      m_(state_elements(segments_) * sizeof(float), ctx.device()),
      v_(state_elements(segments_) * sizeof(float), ctx.device()),
      partials_(owned.size() * k::kSquareSumPartials * sizeof(float), ctx.device()),
      host_partials_(owned.size() * k::kSquareSumPartials) {}

template <typename T>
double CudaShardedAdamW<T>::owned_grad_square_sum(const T* grads) {
  float* partials = static_cast<float*>(partials_.data());
  for (size_t i = 0; i < owned_.size(); i++)
    k::square_sum_partials(ctx_, grads + owned_[i].offset, owned_[i].count,
                           partials + i * k::kSquareSumPartials);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(host_partials_.data(), partials,
                                  host_partials_.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                  ctx_.stream()));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream()));
  double total = 0;
  for (float p : host_partials_) total += p;
  return total;
}

template <typename T>
void CudaShardedAdamW<T>::scale_grads(T* grads, float factor) {
  for (const ShardRange& r : owned_) k::scale(ctx_, grads + r.offset, r.count, factor);
}

template <typename T>
void CudaShardedAdamW<T>::step(float* master, T* params, const T* grads, float lr, long t) {
  float* m = static_cast<float*>(m_.data());
  float* v = static_cast<float*>(v_.data());
  for (const AdamWSegment& s : segments_) {
    const float decay = s.decay ? options_.weight_decay : 0.0f;
    if constexpr (std::is_same_v<T, float>) {
      (void)params;  // the master weights are the model's
      k::adamw_update(ctx_, master + s.offset, grads + s.offset, m + s.state, v + s.state, s.count,
                      lr, options_.beta1, options_.beta2, options_.eps, decay, t);
    } else {
      k::adamw_update(ctx_, master + s.offset, params + s.offset, grads + s.offset, m + s.state,
                      v + s.state, s.count, lr, options_.beta1, options_.beta2, options_.eps, decay,
                      t);
    }
  }
}

template class CudaShardedAdamW<float>;
template class CudaShardedAdamW<__nv_bfloat16>;

}  // namespace weft::parallel
