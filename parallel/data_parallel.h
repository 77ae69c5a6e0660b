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
//
// Gradients and parameters live on the host in f32, or on a GPU in f32 or bf16 (a model
// trained in bf16 sends its bf16 gradients as they are). A GPU's backward only enqueues the
// kernels that write a bucket: `wait_for_grads` is called before its reduction starts.
#include <cstddef>
#include <functional>
#include <vector>

#include "comm/communicator.h"
#include "parallel/bucket_plan.h"
#include "runtime/buffer.h"
#include "runtime/trace.h"

namespace weft::parallel {

struct DataParallelOptions {
  size_t bucket_bytes = 25u << 20;
  bool zero1 = false;
  DType wire_dtype = DType::f32;  // f32 or bf16
  DType dtype = DType::f32;       // of the gradients and parameters: f32, or bf16 on a GPU
  Device device = Device::cpu();  // where they are
  std::function<void()> wait_for_grads;  // GPU: returns once backward's queued writes are done
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
  // `grads` and `params` are flat buffers of padded_elements() elements of options.dtype.
  DataParallel(comm::Communicator& comm, std::vector<size_t> param_counts,
               DataParallelOptions options);

  size_t padded_elements() const { return plan_.padded_elements; }
  const BucketPlan& plan() const { return plan_; }
  // Ranges of the flat buffers this rank must step: everything, or its ZeRO-1 shard.
  const std::vector<ShardRange>& owned_ranges() const { return owned_; }

  // Call once per step before the last micro-batch's backward.
  void begin(void* grads);
  void grad_ready(int param);
  // Waits for every bucket; afterwards the owned ranges of `grads` hold the average over ranks.
  CommStats finish();
  // ZeRO-1 only: after the optimizer updated the owned ranges, share them with every rank.
  void gather_params(void* params);
  // Where each bucket's reduction (and ZeRO-1 gather) goes on the rank's timeline, on its
  // communication row as the executor ran it; null: nowhere.
  void set_trace(TraceRecorder* trace) { trace_ = trace; }

 private:
  void launch_ready_buckets();
  void launch(int bucket);
  // Puts the finished `works` (one per bucket, in plan order, moving `dtype`) on the timeline.
  void trace_buckets(const char* name, const std::vector<comm::Work>& works, DType dtype) const;

  comm::Communicator& comm_;
  DataParallelOptions options_;
  BucketPlan plan_;
  std::vector<ShardRange> owned_;
  std::vector<int> missing_;  // per bucket: parameters not yet ready
  int next_launch_ = 0;
  // f32 host gradients sent as bf16: converted into wire_ before, and back after.
  bool converts_to_wire() const { return options_.wire_dtype != options_.dtype; }
  // Elements [offset, offset + count) of a flat buffer of `dtype`, on the gradients' device
  // (or the host, for the bf16 wire copy of host gradients).
  Tensor span(void* base, size_t offset, size_t count, DType dtype) const;

  std::byte* grads_ = nullptr;
  std::vector<comm::Work> works_;
  Buffer wire_;  // bf16 staging for every bucket (allocated once)
  TraceRecorder* trace_ = nullptr;
};

}  // namespace weft::parallel
