#include "parallel/data_parallel.h"

#include <algorithm>
#include <cstring>

#include "runtime/error.h"
#include "runtime/half.h"

namespace weft::parallel {
namespace {

void to_bf16(const float* in, bf16* out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = bf16(in[i]);
}
void from_bf16(const bf16* in, float* out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = static_cast<float>(in[i]);
}

}  // namespace

DataParallel::DataParallel(comm::Communicator& comm, std::vector<size_t> param_counts,
                           DataParallelOptions options)
    : comm_(comm), options_(options) {
  if (options.wire_dtype != DType::f32 && options.wire_dtype != DType::bf16)
    throw Error(ErrorCode::InvalidArgument, std::string("gradient wire dtype ") +
                                                dtype_name(options.wire_dtype) +
                                                " is not supported: use f32 or bf16");
  if (options.dtype != DType::f32 && !(options.dtype == DType::bf16 && !options.device.is_cpu()))
    throw Error(ErrorCode::InvalidArgument,
                std::string("gradients in ") + dtype_name(options.dtype) + " on " +
                    options.device.str() + " are not supported: f32, or bf16 on a GPU");
  // A GPU's gradients go on the wire as they are: converting them is the model's choice of
  // dtype, not the wire's.
  if (!options.device.is_cpu() && options.wire_dtype != options.dtype)
    throw Error(ErrorCode::InvalidArgument,
                std::string("gradient wire dtype ") + dtype_name(options.wire_dtype) +
                    " differs from the gradients' own " + dtype_name(options.dtype) +
                    " on a GPU: train in bf16 to send bf16 gradients");
  comm.record_op_times(true);  // finish() reports how much of their run time was hidden
  size_t n = static_cast<size_t>(comm.size());
  plan_ = plan_buckets(param_counts,
                       std::max<size_t>(1, options.bucket_bytes / dtype_size(options.dtype)), n);
  for (const Bucket& b : plan_.buckets) {
    if (options.zero1) owned_.push_back({b.offset + b.count / n * comm.rank(), b.count / n});
  }
  if (!options.zero1) owned_.push_back({0, plan_.padded_elements});
  // The owned ranges were collected last-bucket-first; step them in buffer order.
  std::sort(owned_.begin(), owned_.end(),
            [](const ShardRange& a, const ShardRange& b) { return a.offset < b.offset; });
  if (converts_to_wire()) wire_ = Buffer(plan_.padded_elements * sizeof(bf16));
  missing_.resize(plan_.buckets.size());
}

Tensor DataParallel::span(void* base, size_t offset, size_t count, DType dtype) const {
  return Tensor::flat(static_cast<std::byte*>(base) + offset * dtype_size(dtype), dtype, count,
                      dtype == options_.dtype ? options_.device : Device::cpu());
}

void DataParallel::begin(void* grads) {
  grads_ = static_cast<std::byte*>(grads);
  works_.clear();
  next_launch_ = 0;
  for (size_t b = 0; b < plan_.buckets.size(); b++)
    missing_[b] = static_cast<int>(plan_.buckets[b].params.size());
  // Padding-only buckets are ready at once.
  launch_ready_buckets();
}

void DataParallel::grad_ready(int param) {
  for (int b : plan_.buckets_of_param.at(param)) missing_[b]--;
  launch_ready_buckets();
}

// Buckets start strictly in plan order, so every rank issues the same collectives in the same
// order even if two buckets become ready at once.
void DataParallel::launch_ready_buckets() {
  while (next_launch_ < static_cast<int>(plan_.buckets.size()) && missing_[next_launch_] == 0)
    launch(next_launch_++);
}

void DataParallel::launch(int index) {
  // One rank: its gradients already are the average, and there is no wire to compress for.
  if (comm_.size() == 1) return;
  if (options_.wait_for_grads) options_.wait_for_grads();
  const Bucket& b = plan_.buckets[index];
  const size_t shard = b.count / static_cast<size_t>(comm_.size());
  void* base = grads_;
  DType dtype = options_.dtype;
  if (converts_to_wire()) {
    to_bf16(reinterpret_cast<const float*>(grads_) + b.offset, wire_.as<bf16>() + b.offset,
            b.count);
    base = wire_.data();
    dtype = DType::bf16;
  }
  if (options_.zero1) {
    // The ring reduces in place in its input, so the shard lands in a scratch-free spot: the
    // rank's own block of the bucket.
    works_.push_back(comm_.reduce_scatter(span(base, b.offset, b.count, dtype),
                                          span(base, b.offset + shard * comm_.rank(), shard, dtype),
                                          ReduceOp::avg));
  } else {
    works_.push_back(comm_.allreduce(span(base, b.offset, b.count, dtype), ReduceOp::avg));
  }
}

CommStats DataParallel::finish() {
  if (next_launch_ != static_cast<int>(plan_.buckets.size()))
    throw Error(ErrorCode::Internal, "finish(): bucket " + std::to_string(next_launch_) +
                                         " never became ready; backward did not report every "
                                         "parameter");
  CommStats stats;
  Clock::time_point start = Clock::now();
  for (auto& w : works_) w.wait();
  stats.exposed_seconds = seconds_since(start);
  for (auto& w : works_) stats.comm_seconds += w.run_seconds();
  trace_buckets(options_.zero1 ? "reduce-scatter bucket" : "allreduce bucket", works_,
                options_.wire_dtype);
  if (converts_to_wire() && comm_.size() > 1) {
    const bf16* w = wire_.as<bf16>();
    float* g = reinterpret_cast<float*>(grads_);
    for (const auto& r : owned_) from_bf16(w + r.offset, g + r.offset, r.count);
  }
  return stats;
}

void DataParallel::gather_params(void* params) {
  if (!options_.zero1) return;
  const size_t n = static_cast<size_t>(comm_.size());
  std::vector<comm::Work> works;
  for (const Bucket& b : plan_.buckets) {
    const size_t shard = b.count / n;
    works.push_back(
        comm_.allgather(span(params, b.offset + shard * comm_.rank(), shard, options_.dtype),
                        span(params, b.offset, b.count, options_.dtype)));
  }
  for (auto& w : works) w.wait();
  trace_buckets("allgather parameters", works, options_.dtype);
}

void DataParallel::trace_buckets(const char* name, const std::vector<comm::Work>& works,
                                 DType dtype) const {
  if (!trace_) return;
  for (size_t b = 0; b < works.size(); b++) {
    const auto bytes = static_cast<int64_t>(plan_.buckets[b].count * dtype_size(dtype));
    trace_->record(TraceRow::communication, name, works[b].started_at(), works[b].ended_at(),
                   {{"bucket", static_cast<int64_t>(b)}, {"bytes", bytes}});
  }
}

}  // namespace weft::parallel
