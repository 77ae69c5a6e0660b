#include "examples/train/model_lanes.h"

#include <algorithm>
#include <string>
#include <thread>

#include "kernels/matmul.h"
#include "runtime/error.h"

namespace weft::train {

ModelLanes::ModelLanes(const models::GptConfig& config, int micro_batch, int lanes)
    : T_(config.seq) {
  if (lanes < 1 || lanes > micro_batch)
    throw Error(ErrorCode::InvalidArgument,
                std::to_string(lanes) + " lanes for micro-batches of " +
                    std::to_string(micro_batch) +
                    " sequences: each lane needs at least one sequence");
  for (int k = 0; k < lanes; k++) {
    int most = (micro_batch + lanes - 1) / lanes;
    models_.push_back(std::make_unique<models::Gpt>(config, most));
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
  const int blas = kernels::cpu::blas_threads();
  kernels::cpu::set_blas_threads(1);
  {
    std::vector<std::jthread> helpers;  // joined at the end of the scope
    for (int k = 1; k < lanes(); k++)
      if (lane_batch_[k] > 0) helpers.emplace_back([&body, k] { body(k); });
    if (lane_batch_[0] > 0) body(0);
  }
  kernels::cpu::set_blas_threads(blas);
}

float ModelLanes::forward(const float* params, const int32_t* inputs, const int32_t* targets,
                          int B) {
  std::vector<float> losses(lanes(), 0.0f);
  for (int k = 0; k < lanes(); k++) lane_batch_[k] = share(B, k).second;
  run_lanes([&](int k) {
    auto [first, count] = share(B, k);
    size_t offset = static_cast<size_t>(first) * T_;
    losses[k] = models_[k]->forward(params, inputs + offset, targets + offset, count);
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
