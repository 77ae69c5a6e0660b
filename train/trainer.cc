#include "train/trainer.h"

#include <cmath>
#include <cstring>

#include "train/trainer_setup.h"
#include "runtime/checksum.h"
#include "runtime/clock.h"

namespace weft::train {
namespace {

// The mean of `value` over the ranks of `comm` (a host tensor: every host backend takes it).
double mean_over_ranks(comm::Communicator& comm, double value) {
  comm.allreduce(Tensor::flat(&value, DType::f64, 1), ReduceOp::avg).wait();
  return value;
}

}  // namespace

Trainer::Trainer(const TrainOptions& options, const Corpus& corpus, comm::Communicator& comm)
    : options_(options),
      corpus_(corpus),
      comm_(comm),
      cpu_(options.threads),
      blas_threads_(options.threads),
      model_(cpu_, options.model, options.micro_batch, options.lanes()),
      dp_(comm, model_.layout().counts(), data_parallel_options(options)),
      params_(comm.alloc(dp_.padded_elements() * sizeof(float))),
      grads_(comm.alloc(dp_.padded_elements() * sizeof(float))),
      optimizer_(cpu_, dp_.owned_ranges(), decay_spans(model_.layout()), adamw_options(options)),
      schedule_{options.lr, options.warmup, options.steps},
      inputs_(static_cast<size_t>(options.micro_batch) * options.model.seq),
      targets_(inputs_.size()) {
  model_.init_params(params_.as<float>(), options.seed);
  // Every rank computes the same weights from the seed; weft-train checks that they did (as
  // DDP checks its replicas) by this checksum instead of broadcasting rank 0's copy, which
  // would hide ranks that run different code.
  initial_checksum_ = checksum(params_.data(), model_.layout().total() * sizeof(float));
}

std::vector<uint64_t> Trainer::allgather_words(const std::vector<uint64_t>& mine) {
  return allgather_host_words(comm_, mine);
}

void Trainer::send_bytes(const void* data, size_t bytes, int peer) {
  // The send only reads it.
  comm_.send(Tensor::flat(const_cast<void*>(data), DType::u8, bytes), peer).wait();
}

void Trainer::recv_bytes(void* data, size_t bytes, int peer) {
  comm_.recv(Tensor::flat(data, DType::u8, bytes), peer).wait();
}

void Trainer::set_trace(TraceRecorder* trace) {
  trace_ = trace;
  dp_.set_trace(trace);
}

CheckpointLayout Trainer::checkpoint_layout() const {
  CheckpointLayout l;
  l.tensors = model_.layout().tensors();
  l.writes.assign(l.tensors.size(), true);
  l.segments = optimizer_.segments();
  l.elements = dp_.padded_elements();
  l.writes_params = comm_.rank() == 0;
  l.writes_moments = options_.zero1 || comm_.rank() == 0;
  return l;
}

void Trainer::state_to_host(float* params, float* m, float* v) {
  const size_t state = parallel::state_elements(optimizer_.segments()) * sizeof(float);
  std::memcpy(params, params_.data(), dp_.padded_elements() * sizeof(float));
  std::memcpy(m, optimizer_.first_moment(), state);
  std::memcpy(v, optimizer_.second_moment(), state);
}

void Trainer::state_from_host(const float* params, const float* m, const float* v) {
  const size_t state = parallel::state_elements(optimizer_.segments()) * sizeof(float);
  std::memcpy(params_.data(), params, dp_.padded_elements() * sizeof(float));
  std::memcpy(optimizer_.first_moment(), m, state);
  std::memcpy(optimizer_.second_moment(), v, state);
}

double Trainer::global_grad_norm() {
  double sq = optimizer_.owned_grad_square_sum(grads_.as<float>());
  // ZeRO-1 shards are disjoint: their squares add up across ranks. Without ZeRO-1 every rank
  // holds the whole averaged gradient already.
  if (options_.zero1 && comm_.size() > 1)
    comm_.allreduce(Tensor::flat(&sq, DType::f64, 1), ReduceOp::sum).wait();
  return std::sqrt(sq);
}

StepStats Trainer::step(int step) {
  const int dp = comm_.size(), micro = options_.micro_batch;
  const int accumulation = options_.accumulation();
  float* params = params_.as<float>();
  float* grads = grads_.as<float>();
  StepStats s;
  s.step = step;
  s.lr = schedule_.at(step);
  const TraceScope whole(trace_, TraceRow::compute, "step", {{"step", step}});
  Clock::time_point start = Clock::now();

  std::memset(grads, 0, grads_.size());
  double loss = 0;
  const float scale = loss_scale(options_);
  for (int m = 0; m < accumulation; m++) {
    Clock::time_point t = Clock::now();
    {
      const TraceScope span(trace_, TraceRow::compute, "forward", {{"micro_batch", m}});
      load_micro_batch(corpus_, options_, comm_.rank(), dp, step, m, inputs_.data(),
                       targets_.data());
      loss += model_.forward(params, inputs_.data(), targets_.data(), micro);
    }
    s.ms_forward += ms_since(t);
    t = Clock::now();
    // Only the last micro-batch finishes gradients, so only its backward starts buckets.
    bool last = m == accumulation - 1;
    if (last) dp_.begin(grads);
    {
      const TraceScope span(trace_, TraceRow::compute, "backward", {{"micro_batch", m}});
      model_.backward(params, grads, scale, last, [this](int p) { dp_.grad_ready(p); });
    }
    s.ms_backward += ms_since(t);
  }

  {
    const TraceScope span(trace_, TraceRow::compute, "wait for gradient buckets");
    record_comm(s, dp_.finish());
  }

  Clock::time_point t = Clock::now();
  {
    const TraceScope span(trace_, TraceRow::compute, "optimizer");
    s.grad_norm = global_grad_norm();
    if (const float f = clip_factor(options_, s.grad_norm); f < 1.0f)
      optimizer_.scale_grads(grads, f);
    optimizer_.step(params, grads, static_cast<float>(s.lr), step);
    dp_.gather_params(params);
  }
  s.ms_optimizer = ms_since(t);

  s.loss = mean_over_ranks(comm_, loss / accumulation);
  record_rates(s, options_, start);
  return s;
}

EvalStats Trainer::evaluate(int step) {
  const int dp = comm_.size(), micro = options_.micro_batch, T = options_.model.seq;
  const int per_rank = options_.batch / dp;
  double loss = 0;
  int batches = 0;
  for (int first = 0; first < per_rank; first += micro, batches++) {
    int count = std::min(micro, per_rank - first);
    corpus_.eval_batch(static_cast<uint64_t>(comm_.rank() * per_rank + first), count, T,
                       inputs_.data(), targets_.data());
    loss += model_.forward(params_.as<float>(), inputs_.data(), targets_.data(), count);
  }
  EvalStats e;
  e.step = step;
  e.loss = mean_over_ranks(comm_, loss / batches);
  e.perplexity = std::exp(e.loss);
  return e;
}

}  // namespace weft::train
