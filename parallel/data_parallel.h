#pragma once
// Data parallelism with overlapped gradient buckets (Horovod's tensor fusion, DDP's reducer).
// Backward calls grad_ready(p) as soon as parameter p's gradient is final; when every
// parameter of a bucket is ready, the bucket's reduction starts asynchronously while backward
// goes on. finish() waits for the rest and reports how much communication was exposed.
//
// Modes: plain (allreduce-average each bucket) and ZeRO-1 (reduce-scatter each bucket; the
// rank then owns the shard it received, steps only that shard of the optimizer state, and
// gather_params() allgathers the updated parameters). Wire dtype f32 or bf16 (gradients are
// converted to bf16 for the wire and back, accumulation happens in f32 inside the reduction).
#include <cstddef>
#include <vector>

#include "comm/communicator.h"
#include "parallel/bucket_plan.h"
#include "runtime/buffer.h"

namespace weft::parallel {

struct DataParallelOptions {
  size_t bucket_bytes = 25u << 20;
  bool zero1 = false;
  DType wire_dtype = DType::f32;  // f32 or bf16
};

struct CommStats {
  double comm_seconds = 0;     // time the reductions ran on the communicator
  double exposed_seconds = 0;  // time the trainer waited for them in finish()
  double hidden_fraction() const {
    return comm_seconds > 0 ? std::max(0.0, 1.0 - exposed_seconds / comm_seconds) : 1.0;
  }
};

// A range of the flat buffers this rank updates in the optimizer step.
struct ShardRange {
  size_t offset;
  size_t count;
};

class DataParallel {
 public:
  // `grads` and `params` are flat f32 buffers of plan_padded_elements() elements.
  DataParallel(comm::Communicator& comm, std::vector<size_t> param_counts,
               DataParallelOptions options);

  size_t padded_elements() const { return plan_.padded_elements; }
  const BucketPlan& plan() const { return plan_; }
  // Ranges of the flat buffers this rank must step: everything, or its ZeRO-1 shard.
  const std::vector<ShardRange>& owned_ranges() const { return owned_; }
  size_t owned_elements() const;

  // Call once per step before the last micro-batch's backward.
  void begin(float* grads);
  void grad_ready(int param);
  // Waits for every bucket; afterwards the owned ranges of `grads` hold the average over ranks.
  CommStats finish();
  // ZeRO-1 only: after the optimizer updated the owned ranges, share them with every rank.
  void gather_params(float* params);

 private:
  void launch_ready_buckets();
  void launch(int bucket);

  comm::Communicator& comm_;
  DataParallelOptions options_;
  BucketPlan plan_;
  std::vector<ShardRange> owned_;
  std::vector<int> missing_;  // per bucket: parameters not yet ready
  int next_launch_ = 0;
  float* grads_ = nullptr;
  std::vector<comm::Work> works_;
  Buffer wire_;  // bf16 staging for every bucket (allocated once)
};

}  // namespace weft::parallel
