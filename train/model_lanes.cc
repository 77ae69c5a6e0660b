#include "train/model_lanes.h"

#include <algorithm>
#include <exception>
#include <string>
#include <thread>

#include "runtime/error.h"

namespace weft::train {

ModelLanes::ModelLanes(const kernels::cpu::CpuContext& ctx, const models::GptConfig& config,
                       int micro_batch, int lanes)
    : T_(config.seq) {
  if (lanes < 1 || lanes > micro_batch)
    throw Error(ErrorCode::InvalidArgument,
                std::to_string(lanes) + " lanes for micro-batches of " +
                    std::to_string(micro_batch) +
                    " sequences: each lane needs at least one sequence");
  if (lanes > ctx.threads())
    throw Error(ErrorCode::InvalidArgument,
                std::to_string(lanes) + " lanes but the context allows " +
                    std::to_string(ctx.threads()) + " threads: give each lane a thread");
  const kernels::cpu::CpuContext lane_ctx = lanes == 1 ? ctx : kernels::cpu::CpuContext(1);
  for (int k = 0; k < lanes; k++) {
    int most = (micro_batch + lanes - 1) / lanes;
    models_.push_back(std::make_unique<models::Gpt>(lane_ctx, config, most));
    if (k > 0) lane_grads_.emplace_back(layout().total() * sizeof(float));  // zeroed
  }
  lane_batch_.assign(lanes, 0);
  arrivals_ = std::make_unique<std::atomic<int>[]>(layout().tensors().size());
}

std::pair<int, int> ModelLanes::share(int B, int k) const {
  int n = lanes();
  int first = static_cast<int>(static_cast<long>(B) * k / n);
  int end = static_cast<int>(static_cast<long>(B) * (k + 1) / n);
  return {first, end - first};
}

void ModelLanes::run_lanes(const std::function<void(int)>& body) {
  if (lanes() == 1) return body(0);  // lane 0 has every sequence
  // Every lane's kernels ask for one BLAS thread; held here around all of them, the setting
  // changes once, and back on every way out, instead of racing between the lanes' own guards.
  kernels::cpu::BlasThreads one_thread(1);
  // A lane's error (a token outside the vocabulary, say) reaches the caller as lane 0's would.
  std::vector<std::exception_ptr> failed(lanes());
  {
    std::vector<std::jthread> helpers;  // joined at the end of the scope, even by an exception
    for (int k = 1; k < lanes(); k++) {
      if (lane_batch_[k] == 0) continue;
      helpers.emplace_back([&body, &failed, k] {
        try {
          body(k);
        } catch (...) {
          failed[k] = std::current_exception();
        }
      });
    }
    if (lane_batch_[0] > 0) body(0);
  }
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
}

float ModelLanes::forward(const float* params, const int32_t* inputs, const int32_t* targets,
                          int B) {
  std::vector<float> losses(lanes(), 0.0f);
  for (int k = 0; k < lanes(); k++) lane_batch_[k] = share(B, k).second;
  run_lanes([&](int k) {
    auto [first, count] = share(B, k);
    size_t offset = static_cast<size_t>(first) * T_;
    models_[k]->forward(params, inputs + offset, targets + offset, count);
    losses[k] = models_[k]->mean_loss();
  });
  // Each lane's loss is the mean over its own positions.
  double sum = 0;
  for (int k = 0; k < lanes(); k++) sum += static_cast<double>(losses[k]) * lane_batch_[k];
  return static_cast<float>(sum / B);
}

void ModelLanes::finished_tensor(int index, float* grads, const std::function<void(int)>& on_ready) {
  // acq_rel: the last lane to arrive sees every other lane's writes to this tensor.
  if (arrivals_[index].fetch_add(1, std::memory_order_acq_rel) + 1 != active_lanes_) return;
  const auto& t = layout().tensors()[index];
  float* sum = grads + t.offset;
  for (Buffer& lane : lane_grads_) {
    float* g = lane.as<float>() + t.offset;
    for (size_t i = 0; i < t.count; i++) {
      sum[i] += g[i];
      g[i] = 0.0f;
    }
  }
  if (on_ready) {
    std::lock_guard lock(on_ready_mu_);
    on_ready(index);
  }
}

void ModelLanes::backward(const float* params, float* grads, float loss_scale, bool last_of_step,
                          const std::function<void(int)>& on_ready) {
  if (!last_of_step) {
    run_lanes([&](int k) {
      float* g = k == 0 ? grads : lane_grads_[k - 1].as<float>();
      models_[k]->backward(params, g, loss_scale);
    });
    return;
  }
  for (size_t i = 0; i < layout().tensors().size(); i++) arrivals_[i].store(0);
  active_lanes_ = static_cast<int>(
      std::count_if(lane_batch_.begin(), lane_batch_.end(), [](int b) { return b > 0; }));
  run_lanes([&](int k) {
    float* g = k == 0 ? grads : lane_grads_[k - 1].as<float>();
    models_[k]->backward(params, g, loss_scale,
                         [&](int index) { finished_tensor(index, grads, on_ready); });
  });
}

}  // namespace weft::train
