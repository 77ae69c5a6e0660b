#include "train/parallel_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "parallel/schedule_sim.h"
#include "runtime/checksum.h"
#include "runtime/clock.h"
#include "runtime/error.h"
#include "train/trainer_setup.h"

namespace weft::train {
namespace {

parallel::MeshShape mesh_shape(const TrainOptions& o) {
  parallel::MeshShape m;
  m.dp = o.dp;
  m.tp = o.tp;
  m.pp = o.pp;
  return m;
}

parallel::Schedule schedule_of(const TrainOptions& o) {
  return parallel::make_schedule(o.pp, o.accumulation(), parallel::parse_schedule_kind(o.schedule),
                                 o.virtual_stages);
}

// Sums `value` over `comm` in place (f64 on the host).
double sum_over(comm::Communicator& comm, double value) {
  comm.allreduce(Tensor::flat(&value, DType::f64, 1), ReduceOp::sum).wait();
  return value;
}

}  // namespace

ParallelTrainer::ParallelTrainer(const TrainOptions& options, const Corpus& corpus,
                                 comm::Communicator& world)
    : options_(options),
      corpus_(corpus),
      world_(world),
      mesh_(world, mesh_shape(options)),
      cpu_(options.threads),
      blas_threads_(options.threads),
      tp_group_(mesh_.tp(), Device::cpu()),
      chunks_(options.virtual_stages),
      micro_batches_(options.accumulation()),
      slots_(1),
      dp_(mesh_.dp(),
          [&] {
            // Every chunk's tensors, one after another: the flat buffers' layout.
            const int P = options.pp, rank = mesh_.coords().pp;
            std::vector<size_t> counts;
            for (int c = 0; c < chunks_; c++) {
              const models::GptLayout layout(
                  options.model, models::StagePlan::of(options.model, c * P + rank,
                                                       P * chunks_, mesh_.coords().tp,
                                                       options.tp));
              chunk_offset_.push_back(parameters_);
              chunk_first_tensor_.push_back(static_cast<int>(tensors_.size()));
              for (models::ParamTensor t : layout.tensors()) {
                t.offset += parameters_;
                counts.push_back(t.count);
                tensors_.push_back(std::move(t));
              }
              parameters_ += layout.total();
            }
            return counts;
          }(),
          data_parallel_options(options)),
      params_(dp_.padded_elements() * sizeof(float)),
      grads_(dp_.padded_elements() * sizeof(float)),
      optimizer_(cpu_, dp_.owned_ranges(),
                 [&] {
                   std::vector<parallel::DecaySpan> spans;
                   for (const auto& t : tensors_) spans.push_back({t.offset, t.count, t.decay});
                   return spans;
                 }(),
                 adamw_options(options)),
      schedule_{options.lr, options.warmup, options.steps},
      executor_(mesh_.pp(), schedule_of(options)[static_cast<size_t>(mesh_.coords().pp)],
                parallel::PipelineShape{options.pp, chunks_, micro_batches_,
                                        static_cast<size_t>(options.micro_batch) *
                                            options.model.seq * options.model.d_model,
                                        DType::f32, Device::cpu()}) {
  const parallel::Schedule all = schedule_of(options);
  const std::vector<parallel::Action>& mine = all[static_cast<size_t>(mesh_.coords().pp)];
  theoretical_idle_ = parallel::simulate_schedule(all).idle_fraction;
  // Activation slots: the most micro-batches whose activations this rank holds at once, from a
  // forward until the backward that frees them (zb's weight half, which comes later than the
  // input half); forwards and backwards both go in micro-batch order, so micro-batch % slots
  // never clashes.
  int held = 0;
  for (const parallel::Action& a : mine) {
    if (a.kind == parallel::ActionKind::forward) held++;
    if (a.kind == parallel::ActionKind::backward ||
        a.kind == parallel::ActionKind::backward_weight)
      held--;
    slots_ = std::max(slots_, held);
  }
  slots_ = std::min(slots_, micro_batches_);
  const int P = options.pp, rank = mesh_.coords().pp;
  for (int c = 0; c < chunks_; c++) {
    const models::GptLayout layout(options.model,
                                   models::StagePlan::of(options.model, c * P + rank, P * chunks_,
                                                         mesh_.coords().tp, options.tp));
    models_.push_back(std::make_unique<models::Gpt>(cpu_, layout, options.micro_batch, slots_,
                                                    options.tp > 1 ? &tp_group_ : nullptr,
                                                    options.schedule == "zb"));
    models_.back()->init_params(chunk_params(c), options.seed);
    // The tied embedding's copies (first and last global stage) are summed over the group.
    const bool first = layout.plan().first, last = layout.plan().last;
    if (mesh_.embedding() != nullptr && (first || last))
      tied_wte_ = chunk_first_tensor_[static_cast<size_t>(c)] + layout.wte();
  }
  const size_t tokens = static_cast<size_t>(micro_batches_) * options.micro_batch *
                        options.model.seq;
  inputs_.resize(tokens);
  targets_.resize(tokens);
  // Replicas along dp hold the same slices: each rank's checksum of its slices, combined over
  // its dp replica's ranks in mesh order, is the replica's, which check_replicas_agree compares.
  std::vector<uint64_t> mine_sum = {checksum(params_.data(), parameters_ * sizeof(float))};
  std::vector<uint64_t> all_sums = allgather_words(mine_sum), replica;
  for (int r = 0; r < world.size(); r++)
    if (parallel::mesh_coords(mesh_.shape(), r).dp == mesh_.coords().dp)
      replica.push_back(all_sums[static_cast<size_t>(r)]);
  initial_checksum_ = checksum(replica.data(), replica.size() * sizeof(uint64_t));
}

ParallelTrainer::~ParallelTrainer() = default;

std::vector<uint64_t> ParallelTrainer::allgather_words(const std::vector<uint64_t>& mine) {
  return allgather_host_words(world_, mine);
}

const int32_t* ParallelTrainer::tokens(const std::vector<int32_t>& all, int micro_batch) const {
  return all.data() +
         static_cast<size_t>(micro_batch) * options_.micro_batch * options_.model.seq;
}

void ParallelTrainer::forward(int chunk, int micro_batch, const void* x) {
  const Clock::time_point start = Clock::now();
  models::Gpt& m = *models_[static_cast<size_t>(chunk)];
  m.forward(slot(micro_batch), chunk_params(chunk), tokens(inputs_, micro_batch),
            tokens(targets_, micro_batch), static_cast<const float*>(x), options_.micro_batch);
  if (m.layout().plan().last) loss_sum_ += m.mean_loss(slot(micro_batch));
  ms_forward_ += ms_since(start);
}

const void* ParallelTrainer::output(int chunk, int micro_batch) {
  return models_[static_cast<size_t>(chunk)]->output(slot(micro_batch));
}

std::function<void(int)> ParallelTrainer::ready_reporter(int chunk, int micro_batch) {
  // Only a chunk's last micro-batch finishes its gradients, so only its backward starts
  // buckets; the tied embedding waits for its group's sum (sum_tied_embedding).
  if (micro_batch != micro_batches_ - 1) return {};
  if (!dp_started_) dp_.begin(grads_.data());
  dp_started_ = true;
  const int first = chunk_first_tensor_[static_cast<size_t>(chunk)];
  return [this, first](int t) {
    if (first + t != tied_wte_) dp_.grad_ready(first + t);
  };
}

void ParallelTrainer::backward(int chunk, int micro_batch, const void* dy) {
  const Clock::time_point start = Clock::now();
  models_[static_cast<size_t>(chunk)]->backward(slot(micro_batch), chunk_params(chunk),
                                                chunk_grads(chunk), loss_scale(options_),
                                                static_cast<const float*>(dy),
                                                ready_reporter(chunk, micro_batch));
  ms_backward_ += ms_since(start);
}

void ParallelTrainer::backward_input(int chunk, int micro_batch, const void* dy) {
  const Clock::time_point start = Clock::now();
  models_[static_cast<size_t>(chunk)]->backward_input(slot(micro_batch), chunk_params(chunk),
                                                      chunk_grads(chunk), loss_scale(options_),
                                                      static_cast<const float*>(dy));
  ms_backward_ += ms_since(start);
}

void ParallelTrainer::backward_weight(int chunk, int micro_batch) {
  const Clock::time_point start = Clock::now();
  models_[static_cast<size_t>(chunk)]->backward_weight(slot(micro_batch), chunk_grads(chunk),
                                                       ready_reporter(chunk, micro_batch));
  ms_backward_ += ms_since(start);
}

const void* ParallelTrainer::input_grad(int chunk) {
  return models_[static_cast<size_t>(chunk)]->input_grad();
}

void* ParallelTrainer::boundary_buffer() {
  boundaries_.emplace_back(static_cast<size_t>(options_.micro_batch) * options_.model.seq *
                           options_.model.d_model * sizeof(float));
  return boundaries_.back().data();
}

void ParallelTrainer::copy_boundary(void* dst, const void* src) {
  std::memcpy(dst, src, boundaries_.front().size());
}

void ParallelTrainer::sum_tied_embedding() {
  if (tied_wte_ < 0) return;
  const models::ParamTensor& t = tensors_[static_cast<size_t>(tied_wte_)];
  mesh_.embedding()
      ->allreduce(Tensor::flat(grads_.as<float>() + t.offset, DType::f32, t.count))
      .wait();
  dp_.grad_ready(tied_wte_);
}

double ParallelTrainer::grad_square_sum() const {
  // Without ZeRO-1 every dp replica holds the whole averaged gradient: one replica counts.
  if (!options_.zero1 && mesh_.coords().dp != 0) return 0;
  const float* g = grads_.as<float>();
  double sq = 0;
  for (size_t i = 0; i < tensors_.size(); i++) {
    const models::ParamTensor& t = tensors_[i];
    // A tensor whole on every tp rank is counted by tp rank 0; the tied embedding's copy on
    // the last stage is the first stage's, counted there.
    if (t.split_dim < 0 && mesh_.coords().tp != 0) continue;
    if (static_cast<int>(i) == tied_wte_ && !mesh_.first_stage()) continue;
    for (const parallel::ShardRange& r : dp_.owned_ranges()) {
      const size_t begin = std::max(r.offset, t.offset);
      const size_t end = std::min(r.offset + r.count, t.offset + t.count);
      for (size_t k = begin; k < end; k++) sq += static_cast<double>(g[k]) * g[k];
    }
  }
  return sq;
}

StepStats ParallelTrainer::step(int step) {
  StepStats s;
  s.step = step;
  s.lr = schedule_.at(step);
  const Clock::time_point start = Clock::now();
  std::memset(grads_.data(), 0, grads_.size());
  const size_t per_micro = static_cast<size_t>(options_.micro_batch) * options_.model.seq;
  for (int m = 0; m < micro_batches_; m++)
    load_micro_batch(corpus_, options_, mesh_.coords().dp, options_.dp, step, m,
                     inputs_.data() + m * per_micro, targets_.data() + m * per_micro);
  loss_sum_ = ms_forward_ = ms_backward_ = 0;
  dp_started_ = false;
  const parallel::PipelineTimes pipeline = executor_.run(*this);
  s.ms_forward = ms_forward_;
  s.ms_backward = ms_backward_;
  if (options_.pp > 1) s.pipeline_idle = pipeline.idle_fraction();
  if (options_.tp > 1) s.ms_tp_comm = tp_group_.take_seconds() * 1e3;
  sum_tied_embedding();
  record_comm(s, dp_.finish());

  Clock::time_point t = Clock::now();
  s.grad_norm = std::sqrt(sum_over(world_, grad_square_sum()));
  if (const float f = clip_factor(options_, s.grad_norm); f < 1.0f)
    optimizer_.scale_grads(grads_.as<float>(), f);
  optimizer_.step(params_.as<float>(), grads_.as<float>(), static_cast<float>(s.lr), step);
  dp_.gather_params(params_.as<float>());
  s.ms_optimizer = ms_since(t);

  // The loss lives on the last stage: summed over the pipeline (the others add 0), averaged
  // over the data-parallel replicas.
  double loss = mesh_.last_stage() ? loss_sum_ / micro_batches_ : 0.0;
  loss = sum_over(mesh_.pp(), loss);
  s.loss = sum_over(mesh_.dp(), loss) / options_.dp;
  record_rates(s, options_, start);
  return s;
}

std::string ParallelTrainer::activation_memory_line() {
  uint64_t mine = 0;
  for (const auto& m : models_) mine += m->activation_bytes();
  const std::vector<uint64_t> all = allgather_words({mine});
  std::string line = "activation memory per pipeline stage:";
  for (int stage = 0; stage < options_.pp; stage++) {
    const int rank = parallel::mesh_rank(mesh_.shape(), parallel::MeshCoords{0, 0, stage});
    char part[64];
    std::snprintf(part, sizeof part, "%s %d: %.1f MiB", stage == 0 ? "" : ",", stage,
                  static_cast<double>(all[static_cast<size_t>(rank)]) / (1 << 20));
    line += part;
  }
  return line;
}

EvalStats ParallelTrainer::evaluate(int step) {
  // Forward only, one micro-batch after another through the stages in order: a chain of
  // blocking sends and receives that never waits on itself.
  const int micro = options_.micro_batch, T = options_.model.seq, C = options_.model.d_model;
  const int per_rank = options_.batch / options_.dp, P = options_.pp;
  const int rank = mesh_.coords().pp;
  comm::Communicator& pp = mesh_.pp();
  if (boundaries_.empty()) boundary_buffer();
  float* received = boundaries_.front().as<float>();
  double loss = 0;
  int batches = 0;
  for (int first = 0; first < per_rank; first += micro, batches++) {
    const int count = std::min(micro, per_rank - first);
    const size_t elements = static_cast<size_t>(count) * T * C;
    corpus_.eval_batch(static_cast<uint64_t>(mesh_.coords().dp * per_rank + first), count, T,
                       inputs_.data(), targets_.data());
    for (int c = 0; c < chunks_; c++) {
      models::Gpt& m = *models_[static_cast<size_t>(c)];
      const bool first_stage = m.layout().plan().first, last_stage = m.layout().plan().last;
      if (!first_stage)
        pp.recv(Tensor::flat(received, DType::f32, elements), (rank + P - 1) % P).wait();
      m.forward(0, chunk_params(c), inputs_.data(), targets_.data(),
                first_stage ? nullptr : received, count);
      if (last_stage)
        loss += m.mean_loss(0);
      else
        pp.send(Tensor::flat(const_cast<float*>(m.output(0)), DType::f32, elements),
                (rank + 1) % P)
            .wait();
    }
  }
  double mean = mesh_.last_stage() ? loss / batches : 0.0;
  mean = sum_over(mesh_.pp(), mean);
  EvalStats e;
  e.step = step;
  e.loss = sum_over(mesh_.dp(), mean) / options_.dp;
  e.perplexity = std::exp(e.loss);
  return e;
}

}  // namespace weft::train
