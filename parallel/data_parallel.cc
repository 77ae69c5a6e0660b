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
  comm.record_op_times(true);  // finish() reports how much of their run time was hidden
  size_t n = static_cast<size_t>(comm.size());
  plan_ = plan_buckets(param_counts, std::max<size_t>(1, options.bucket_bytes / sizeof(float)), n);
  for (const Bucket& b : plan_.buckets) {
    if (options.zero1) owned_.push_back({b.offset + b.count / n * comm.rank(), b.count / n});
  }
  if (!options.zero1) owned_.push_back({0, plan_.padded_elements});
  // The owned ranges were collected last-bucket-first; step them in buffer order.
  std::sort(owned_.begin(), owned_.end(),
            [](const ShardRange& a, const ShardRange& b) { return a.offset < b.offset; });
  if (options.wire_dtype == DType::bf16) wire_ = Buffer(plan_.padded_elements * sizeof(bf16));
  missing_.resize(plan_.buckets.size());
}

size_t DataParallel::owned_elements() const {
  size_t total = 0;
  for (const auto& r : owned_) total += r.count;
  return total;
}

void DataParallel::begin(float* grads) {
  grads_ = grads;
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
  const Bucket& b = plan_.buckets[index];
  size_t n = static_cast<size_t>(comm_.size());
  float* g = grads_ + b.offset;
  if (options_.wire_dtype == DType::bf16) {
    bf16* w = wire_.as<bf16>() + b.offset;
    to_bf16(g, w, b.count);
    if (options_.zero1) {
      works_.push_back(comm_.reduce_scatter(Tensor::flat(w, DType::bf16, b.count),
                                            Tensor::flat(w + b.count / n * comm_.rank(),
                                                         DType::bf16, b.count / n),
                                            ReduceOp::avg));
    } else {
      works_.push_back(comm_.allreduce(Tensor::flat(w, DType::bf16, b.count), ReduceOp::avg));
    }
    return;
  }
  if (options_.zero1) {
    // The ring reduces in place in its input, so the shard lands in a scratch-free spot: the
    // rank's own block of the bucket.
    works_.push_back(comm_.reduce_scatter(Tensor::flat(g, DType::f32, b.count),
                                          Tensor::flat(g + b.count / n * comm_.rank(),
                                                       DType::f32, b.count / n),
                                          ReduceOp::avg));
  } else {
    works_.push_back(comm_.allreduce(Tensor::flat(g, DType::f32, b.count), ReduceOp::avg));
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
  if (options_.wire_dtype == DType::bf16 && comm_.size() > 1) {
    const bf16* w = wire_.as<bf16>();
    for (const auto& r : owned_) from_bf16(w + r.offset, grads_ + r.offset, r.count);
  }
  return stats;
}

void DataParallel::gather_params(float* params) {
  if (!options_.zero1) return;
  size_t n = static_cast<size_t>(comm_.size());
  std::vector<comm::Work> works;
  for (const Bucket& b : plan_.buckets) {
    float* p = params + b.offset;
    works.push_back(comm_.allgather(Tensor::flat(p + b.count / n * comm_.rank(), DType::f32, b.count / n),
                                    Tensor::flat(p, DType::f32, b.count)));
  }
  for (auto& w : works) w.wait();
}

}  // namespace weft::parallel
