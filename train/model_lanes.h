#pragma once
// Data parallelism inside one rank: each micro-batch's sequences are split over `lanes`
// threads, each running the model's forward and backward on its share with a one-thread
// context (kernels/context.h), as that many ranks of one thread each would. With one lane, the
// model runs with the caller's context.
//
// Why: the model's products are small (a few hundred rows each). OpenBLAS splitting every one
// of them over the rank's threads pays a hand-off per product and leaves the other ops on one
// thread; lanes run everything in parallel and meet only at the end of forward and backward.
//
// Lane 0 accumulates into the caller's gradient buffer, the others into buffers of their own.
// In the step's last backward, as soon as every lane has finished a tensor's gradient, the lane
// that finished it last adds the other lanes' share into the caller's buffer (and zeroes theirs
// for the next step) and calls on_ready for it, so buckets still start while backward goes on.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/context.h"
#include "models/gpt.h"
#include "runtime/buffer.h"

namespace weft::train {

class ModelLanes {
 public:
  // Activations for micro-batches of up to `micro_batch` sequences split over `lanes` lanes,
  // and a gradient buffer for each lane after the first. `ctx` is what the rank may use: one
  // lane runs with it; several lanes (at most ctx.threads()) run with one thread each.
  ModelLanes(const kernels::cpu::CpuContext& ctx, const models::GptConfig& config, int micro_batch,
             int lanes);

  int lanes() const { return static_cast<int>(models_.size()); }
  const models::GptLayout& layout() const { return models_[0]->layout(); }
  void init_params(float* params, uint64_t seed) const { models_[0]->init_params(params, seed); }

  // Mean cross-entropy over the B x seq positions of inputs/targets ([B, seq] tokens).
  float forward(const float* params, const int32_t* inputs, const int32_t* targets, int B);
  // Adds the last forward's gradients into the lanes' buffers (lane 0's is `grads`). With
  // `last_of_step`, also sums every lane into `grads`, calling on_ready(tensor) from the lane
  // threads (one at a time) as each tensor's sum is final.
  void backward(const float* params, float* grads, float loss_scale, bool last_of_step,
                const std::function<void(int)>& on_ready = {});

 private:
  // Runs body(lane) on every lane with sequences in the last forward (lane 0 on this thread),
  // with OpenBLAS's process-wide count held at one thread while several lanes run. Once every
  // lane has stopped, rethrows the first error a lane threw; the count is restored either way.
  void run_lanes(const std::function<void(int)>& body);
  // First sequence and count of lane `k`'s share of B sequences.
  std::pair<int, int> share(int B, int k) const;
  // A lane has finished tensor `index` in a summing backward.
  void finished_tensor(int index, float* grads, const std::function<void(int)>& on_ready);

  std::vector<std::unique_ptr<models::Gpt>> models_;
  std::vector<Buffer> lane_grads_;  // lanes 1.. (lane 0 writes the caller's buffer)
  std::vector<int> lane_batch_;     // sequences each lane got in the last forward
  int T_;
  std::unique_ptr<std::atomic<int>[]> arrivals_;  // per tensor: lanes that finished it
  int active_lanes_ = 0;  // lanes with sequences in the summing backward
  std::mutex on_ready_mu_;
};

}  // namespace weft::train
