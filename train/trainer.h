#pragma once
// One data-parallel training run of the GPT model on CPU: each rank holds the full model,
// reads its slice of every global batch, accumulates its micro-batches, and the gradient
// buckets are averaged across ranks while backward is still running (parallel/data_parallel).
#include <memory>

#include "comm/communicator.h"
#include "comm/registered_buffer.h"
#include "train/corpus.h"
#include "train/lr_schedule.h"
#include "train/model_lanes.h"
#include "train/step_log.h"
#include "train/train_options.h"
#include "train/training_run.h"
#include "kernels/context.h"
#include "parallel/data_parallel.h"
#include "parallel/sharded_adamw.h"
#include "runtime/buffer.h"

namespace weft::train {

class Trainer final : public TrainingRun {
 public:
  // `options` must be resolved for comm.size() ranks, `threads` included. Initialises the
  // parameters from the seed; no collective runs before the first step, so the ranks can
  // check their configuration (rank_agreement.h) first.
  Trainer(const TrainOptions& options, const Corpus& corpus, comm::Communicator& comm);

  StepStats step(int step) override;
  EvalStats evaluate(int step) override;
  size_t parameter_count() const override { return model_.layout().total(); }
  uint64_t initial_checksum() const override { return initial_checksum_; }
  std::vector<uint64_t> allgather_words(const std::vector<uint64_t>& mine) override;
  void send_bytes(const void* data, size_t bytes, int peer) override;
  void recv_bytes(void* data, size_t bytes, int peer) override;
  void set_trace(TraceRecorder* trace) override;
  CheckpointLayout checkpoint_layout() const override;
  void state_to_host(float* params, float* m, float* v) override;
  void state_from_host(const float* params, const float* m, const float* v) override;

 private:
  double global_grad_norm();

  TrainOptions options_;
  const Corpus& corpus_;
  comm::Communicator& comm_;
  // The rank's kernels run with options.threads threads; OpenBLAS's process-wide count is held
  // at the same while the trainer lives, so no kernel has to change it per call.
  kernels::cpu::CpuContext cpu_;
  kernels::cpu::BlasThreads blas_threads_;
  ModelLanes model_;
  parallel::DataParallel dp_;
  // From the communicator: over shared memory, registered, so every rank reduces a bucket
  // straight from its peers' gradients (comm/registered_buffer.h) instead of through FIFOs.
  comm::RegisteredBuffer params_, grads_;
  parallel::ShardedAdamW optimizer_;
  LrSchedule schedule_;
  std::vector<int32_t> inputs_, targets_;
  uint64_t initial_checksum_ = 0;
  TraceRecorder* trace_ = nullptr;
};

}  // namespace weft::train
