#include "train/cuda_trainer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <type_traits>
#include <vector>

#include "train/lr_schedule.h"
#include "train/memory_check.h"
#include "train/trainer_setup.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "models/gpt_cuda.h"
#include "parallel/cuda_sharded_adamw.h"
#include "parallel/data_parallel.h"
#include "runtime/checksum.h"
#include "runtime/clock.h"
#include "runtime/cuda_buffer.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_stream.h"
#include "runtime/error.h"
#include "runtime/half.h"

namespace weft::train {
namespace {

template <typename T>
constexpr DType dtype_of() {
  return std::is_same_v<T, float> ? DType::f32 : DType::bf16;
}

// T = float: the model computes with the f32 master weights themselves. T = bf16: with a bf16
// copy that every optimizer step rewrites.
template <typename T>
class CudaTrainer final : public TrainingRun {
 public:
  CudaTrainer(const TrainOptions& options, const Corpus& corpus, comm::Communicator& comm,
              int device);
  StepStats step(int step) override;
  EvalStats evaluate(int step) override;
  size_t parameter_count() const override { return model_.layout().total(); }
  uint64_t initial_checksum() const override { return initial_checksum_; }
  std::vector<uint64_t> allgather_words(const std::vector<uint64_t>& mine) override;

 private:
  parallel::DataParallelOptions dp_options(const TrainOptions& options);
  T* params() {
    return std::is_same_v<T, float> ? reinterpret_cast<T*>(master_.data())
                                    : static_cast<T*>(params_.data());
  }
  // Copies the host token arrays to the device (the copy is done when this returns: the host
  // arrays are refilled for the next micro-batch).
  void upload_tokens();
  void synchronize() { WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }
  double global_grad_norm();
  // `value` reduced over the ranks. Through a GPU buffer, since every tensor this trainer gives
  // the communicator lives on the GPU: native NCCL takes nothing else.
  double over_ranks(double value, ReduceOp op);

  TrainOptions options_;
  const Corpus& corpus_;
  comm::Communicator& comm_;
  int device_;
  CudaDeviceGuard on_device_;  // kernels launch on the current device
  CudaStream stream_;
  kernels::cuda::CudaContext cuda_;  // the model's and the optimizer's kernels, on stream_
  models::CudaGpt<T> model_;
  parallel::DataParallel dp_;
  CudaBuffer master_;  // f32 master weights
  CudaBuffer params_;  // the model's bf16 copy (unused for T = float)
  CudaBuffer grads_;   // T
  parallel::CudaShardedAdamW<T> optimizer_;
  LrSchedule schedule_;
  std::vector<int32_t> inputs_, targets_;  // host
  CudaBuffer tokens_;                      // device: inputs, then targets
  CudaBuffer scalar_;                      // device: one f64 for over_ranks()
  uint64_t initial_checksum_ = 0;
};

template <typename T>
parallel::DataParallelOptions CudaTrainer<T>::dp_options(const TrainOptions& options) {
  parallel::DataParallelOptions d = data_parallel_options(options);
  d.dtype = dtype_of<T>();
  d.device = Device::cuda(device_);
  // Backward only enqueued the kernels that write a bucket; the communicator reads it on
  // another stream (NCCL's, or the staging copies'), so the writes must be done first.
  d.wait_for_grads = [this] { synchronize(); };
  return d;
}

template <typename T>
CudaTrainer<T>::CudaTrainer(const TrainOptions& options, const Corpus& corpus,
                            comm::Communicator& comm, int device)
    : options_(options),
      corpus_(corpus),
      comm_(comm),
      device_(device),
      on_device_(device),
      stream_(device),
      cuda_(device, stream_.get()),
      model_(cuda_, options.model, options.micro_batch),
      dp_(comm, model_.layout().counts(), dp_options(options)),
      master_(dp_.padded_elements() * sizeof(float), device),
      params_(std::is_same_v<T, float> ? 0 : dp_.padded_elements() * sizeof(T), device),
      grads_(dp_.padded_elements() * sizeof(T), device),
      optimizer_(cuda_, dp_.owned_ranges(), decay_spans(model_.layout()), adamw_options(options)),
      schedule_{options.lr, options.warmup, options.steps},
      inputs_(static_cast<size_t>(options.micro_batch) * options.model.seq),
      targets_(inputs_.size()),
      tokens_(2 * inputs_.size() * sizeof(int32_t), device),
      scalar_(sizeof(double), device) {
  // The same weights as the CPU trainer's for the same seed, made on the host, and checked
  // across the replicas by their checksum (trainer.cc says why); the model's bf16 copy is made
  // from them.
  std::vector<float> host(dp_.padded_elements(), 0.0f);
  model_.layout().init_params(host.data(), options.seed);
  initial_checksum_ = checksum(host.data(), model_.layout().total() * sizeof(float));
  master_.upload(host.data(), host.size() * sizeof(float));
  if constexpr (!std::is_same_v<T, float>) {
    std::vector<bf16> low(host.size());
    for (size_t i = 0; i < host.size(); i++) low[i] = bf16(host[i]);
    params_.upload(low.data(), low.size() * sizeof(bf16));
  }
}

template <typename T>
void CudaTrainer<T>::upload_tokens() {
  int32_t* d = static_cast<int32_t*>(tokens_.data());
  const size_t bytes = inputs_.size() * sizeof(int32_t);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(d, inputs_.data(), bytes, cudaMemcpyHostToDevice, stream_.get()));
  WEFT_CUDA_CHECK(cudaMemcpyAsync(d + inputs_.size(), targets_.data(), bytes,
                                  cudaMemcpyHostToDevice, stream_.get()));
  synchronize();
}

template <typename T>
std::vector<uint64_t> CudaTrainer<T>::allgather_words(const std::vector<uint64_t>& mine) {
  // Through the GPU, like over_ranks(): native NCCL takes nothing else.
  const size_t ranks = static_cast<size_t>(comm_.size()), bytes = mine.size() * sizeof(uint64_t);
  CudaBuffer in(bytes, device_), out(bytes * ranks, device_);
  in.upload(mine.data(), bytes);
  comm_.allgather(in.view(DType::i64, mine.size()), out.view(DType::i64, mine.size() * ranks))
      .wait();
  std::vector<uint64_t> all(mine.size() * ranks);
  out.download(all.data(), bytes * ranks);
  return all;
}

template <typename T>
double CudaTrainer<T>::over_ranks(double value, ReduceOp op) {
  if (comm_.size() == 1) return value;
  scalar_.upload(&value, sizeof value);
  comm_.allreduce(scalar_.view(DType::f64, 1), op).wait();
  scalar_.download(&value, sizeof value);
  return value;
}

template <typename T>
double CudaTrainer<T>::global_grad_norm() {
  double sq = optimizer_.owned_grad_square_sum(static_cast<T*>(grads_.data()));
  // ZeRO-1 shards are disjoint: their squares add up across ranks.
  if (options_.zero1) sq = over_ranks(sq, ReduceOp::sum);
  return std::sqrt(sq);
}

template <typename T>
StepStats CudaTrainer<T>::step(int step) {
  const int dp = comm_.size(), micro = options_.micro_batch;
  const int accumulation = options_.accumulation();
  const int32_t* inputs = static_cast<const int32_t*>(tokens_.data());
  const int32_t* targets = inputs + inputs_.size();
  T* grads = static_cast<T*>(grads_.data());
  StepStats s;
  s.step = step;
  s.lr = schedule_.at(step);
  Clock::time_point start = Clock::now();

  WEFT_CUDA_CHECK(cudaMemsetAsync(grads, 0, grads_.size(), stream_.get()));
  double loss = 0;
  const float scale = loss_scale(options_);
  for (int m = 0; m < accumulation; m++) {
    // Forward and backward are timed to the end of their GPU work (mean_loss and the
    // synchronisation wait for it), so the phases add up to the step.
    Clock::time_point t = Clock::now();
    load_micro_batch(corpus_, options_, comm_.rank(), dp, step, m, inputs_.data(), targets_.data());
    upload_tokens();
    model_.forward(params(), inputs, targets, micro);
    loss += model_.mean_loss();
    s.ms_forward += ms_since(t);
    t = Clock::now();
    // Only the last micro-batch finishes gradients, so only its backward starts buckets.
    const bool last = m == accumulation - 1;
    if (last) dp_.begin(grads);
    model_.backward(params(), grads, scale,
                    last ? std::function<void(int)>([this](int p) { dp_.grad_ready(p); })
                         : std::function<void(int)>());
    synchronize();
    s.ms_backward += ms_since(t);
  }

  record_comm(s, dp_.finish());

  Clock::time_point t = Clock::now();
  s.grad_norm = global_grad_norm();
  if (const float f = clip_factor(options_, s.grad_norm); f < 1.0f)
    optimizer_.scale_grads(grads, f);
  optimizer_.step(static_cast<float*>(master_.data()), params(), grads, static_cast<float>(s.lr),
                  step);
  synchronize();  // the allgather reads the updated shard on another stream
  dp_.gather_params(params());
  synchronize();
  s.ms_optimizer = ms_since(t);

  s.loss = over_ranks(loss / accumulation, ReduceOp::avg);
  record_rates(s, options_, start);
  return s;
}

template <typename T>
EvalStats CudaTrainer<T>::evaluate(int step) {
  const int dp = comm_.size(), micro = options_.micro_batch, seq = options_.model.seq;
  const int per_rank = options_.batch / dp;
  const int32_t* inputs = static_cast<const int32_t*>(tokens_.data());
  double loss = 0;
  int batches = 0;
  for (int first = 0; first < per_rank; first += micro, batches++) {
    const int count = std::min(micro, per_rank - first);
    corpus_.eval_batch(static_cast<uint64_t>(comm_.rank() * per_rank + first), count, seq,
                       inputs_.data(), targets_.data());
    upload_tokens();
    model_.forward(params(), inputs, inputs + inputs_.size(), count);
    loss += model_.mean_loss();
  }
  EvalStats e;
  e.step = step;
  e.loss = over_ranks(loss / batches, ReduceOp::avg);
  e.perplexity = std::exp(e.loss);
  return e;
}

}  // namespace

int training_device(int local_rank) {
  const int gpus = cuda_device_count();
  if (gpus == 0)
    throw Error(ErrorCode::Unavailable,
                "--device cuda: CUDA sees no GPU here (check nvidia-smi, the driver, and "
                "CUDA_VISIBLE_DEVICES), or use --device cpu");
  const int device = local_rank % gpus;
  require_cuda_device(device, "weft-train --device cuda");
  return device;
}

void check_gpu_memory(const TrainOptions& options, int ranks, int local_size, int device) {
  CudaDeviceGuard on_device(device);
  size_t free = 0, total = 0;
  WEFT_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  // The node's ranks that training_device() puts on this GPU.
  const int gpus = cuda_device_count();
  int sharing = 0;
  for (int r = 0; r < local_size; r++) sharing += r % gpus == device;
  check_memory_fits(options, gpu_memory_need(options, ranks), std::max(1, sharing),
                    static_cast<double>(free), "cuda:" + std::to_string(device) + "'s memory",
                    "free, says cudaMemGetInfo");
}

std::unique_ptr<TrainingRun> make_cuda_trainer(const TrainOptions& options, const Corpus& corpus,
                                               comm::Communicator& comm, int device) {
  if (options.precision == "f32")
    return std::make_unique<CudaTrainer<float>>(options, corpus, comm, device);
  return std::make_unique<CudaTrainer<__nv_bfloat16>>(options, corpus, comm, device);
}

}  // namespace weft::train
