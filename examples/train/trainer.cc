#include "examples/train/trainer.h"

#include <cmath>
#include <cstring>

#include "runtime/clock.h"

namespace weft::train {
namespace {

parallel::DataParallelOptions dp_options(const TrainOptions& o) {
  parallel::DataParallelOptions d;
  d.bucket_bytes = static_cast<size_t>(o.bucket_mb * (1 << 20));
  d.zero1 = o.zero1;
  d.wire_dtype = o.grad_dtype == "bf16" ? DType::bf16 : DType::f32;
  return d;
}

std::vector<parallel::DecaySpan> decay_spans(const models::GptLayout& layout) {
  std::vector<parallel::DecaySpan> spans;
  for (const auto& t : layout.tensors()) spans.push_back({t.offset, t.count, t.decay});
  return spans;
}

parallel::AdamWOptions adamw_options(const TrainOptions& o) {
  parallel::AdamWOptions a;
  a.weight_decay = static_cast<float>(o.weight_decay);
  return a;
}

double ms_since(Clock::time_point t) { return seconds_since(t) * 1e3; }

}  // namespace

Trainer::Trainer(const TrainOptions& options, const Corpus& corpus, comm::Communicator& comm)
    : options_(options),
      corpus_(corpus),
      comm_(comm),
      model_(options.model, options.micro_batch, options.lanes()),
      dp_(comm, model_.layout().counts(), dp_options(options)),
      params_(dp_.padded_elements() * sizeof(float)),
      grads_(dp_.padded_elements() * sizeof(float)),
      optimizer_(dp_.owned_ranges(), decay_spans(model_.layout()), adamw_options(options)),
      schedule_{options.lr, options.warmup, options.steps},
      inputs_(static_cast<size_t>(options.micro_batch) * options.model.seq),
      targets_(inputs_.size()) {
  model_.init_params(params_.as<float>(), options.seed);
  // Every rank computed the same weights from the seed; the broadcast makes that a guarantee
  // (as DDP does) rather than an assumption about identical floating point everywhere.
  comm_.broadcast(Tensor::flat(params_.data(), DType::f32, dp_.padded_elements()), 0).wait();
}

double Trainer::mean_over_ranks(double value) {
  comm_.allreduce(Tensor::flat(&value, DType::f64, 1), ReduceOp::avg).wait();
  return value;
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
  const int dp = comm_.size(), micro = options_.micro_batch, T = options_.model.seq;
  const int accumulation = options_.accumulation(dp);
  const int per_rank = options_.batch / dp;
  float* params = params_.as<float>();
  float* grads = grads_.as<float>();
  StepStats s;
  s.step = step;
  s.lr = schedule_.at(step);
  Clock::time_point start = Clock::now();

  std::memset(grads, 0, grads_.size());
  double loss = 0;
  // Gradients of a mean over every position of this rank's share of the batch; the
  // data-parallel average then makes it the mean over the global batch.
  const float loss_scale = 1.0f / (static_cast<float>(accumulation) * micro * T);
  for (int m = 0; m < accumulation; m++) {
    Clock::time_point t = Clock::now();
    corpus_.train_batch(static_cast<uint64_t>(step - 1), options_.batch,
                        comm_.rank() * per_rank + m * micro, micro, T, inputs_.data(),
                        targets_.data());
    loss += model_.forward(params, inputs_.data(), targets_.data(), micro);
    s.ms_forward += ms_since(t);
    t = Clock::now();
    // Only the last micro-batch finishes gradients, so only its backward starts buckets.
    bool last = m == accumulation - 1;
    if (last) dp_.begin(grads);
    model_.backward(params, grads, loss_scale, last, [this](int p) { dp_.grad_ready(p); });
    s.ms_backward += ms_since(t);
  }

  parallel::CommStats comm = dp_.finish();
  s.ms_comm_exposed = comm.exposed_seconds * 1e3;
  s.ms_comm = comm.comm_seconds * 1e3;
  s.comm_hidden = comm.hidden_fraction();

  Clock::time_point t = Clock::now();
  s.grad_norm = global_grad_norm();
  if (options_.clip > 0 && s.grad_norm > options_.clip)
    optimizer_.scale_grads(grads, static_cast<float>(options_.clip / (s.grad_norm + 1e-6)));
  optimizer_.step(params, grads, static_cast<float>(s.lr), step);
  dp_.gather_params(params);
  s.ms_optimizer = ms_since(t);

  s.loss = mean_over_ranks(loss / accumulation);
  s.ms_step = ms_since(start);
  double tokens = static_cast<double>(options_.batch) * T;
  s.tokens_per_s = tokens / (s.ms_step / 1e3);
  s.model_gflops = s.tokens_per_s * options_.model.flops_per_token() / 1e9;
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
  e.loss = mean_over_ranks(loss / batches);
  e.perplexity = std::exp(e.loss);
  return e;
}

}  // namespace weft::train
