#pragma once
// ParallelTrainer (train/parallel_trainer.h), written once over the device: Ctx is the
// kernels' context and T the model's element type (float, or bf16 on a GPU, with f32 master
// weights). Instantiated by parallel_trainer.cc for the CPU and parallel_trainer_cuda.cc for a
// GPU, each of which first defines TrainDevice<Ctx>: what owns the context (a CPU context and
// its BLAS threads; a GPU, its stream and handles) and the Device its memory is on.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "models/gpt_model.h"
#include "parallel/data_parallel.h"
#include "parallel/mesh.h"
#include "parallel/pipeline_executor.h"
#include "parallel/schedule_sim.h"
#include "parallel/sharded_adamw.h"
#include "parallel/tensor_parallel_group.h"
#include "runtime/checksum.h"
#include "runtime/clock.h"
#include "runtime/half.h"
#include "train/lr_schedule.h"
#include "train/parallel_trainer.h"
#include "train/parallel_trainer_setup.h"
#include "train/pipeline_figures.h"
#include "train/trainer_setup.h"

namespace weft::train {

template <class Ctx>
struct TrainDevice;

template <class Ctx, typename T>
class ParallelTrainer final : public CutModelRun, private parallel::PipelineStage {
 public:
  ParallelTrainer(const TrainOptions& options, const Corpus& corpus, comm::Communicator& world,
                  int gpu);

  StepStats step(int step) override;
  EvalStats evaluate(int step) override;
  size_t parameter_count() const override { return parameters_; }
  uint64_t initial_checksum() const override { return initial_checksum_; }
  std::vector<uint64_t> allgather_words(const std::vector<uint64_t>& mine) override;
  void send_bytes(const void* data, size_t bytes, int peer) override;
  void recv_bytes(void* data, size_t bytes, int peer) override;
  void set_trace(TraceRecorder* trace) override;
  double theoretical_idle() const override { return theoretical_idle_; }
  std::string activation_memory_line() override;
  uint64_t dp_direct_ops() override { return mesh_.dp().direct_ops(); }
  CheckpointLayout checkpoint_layout() const override;
  void state_to_host(float* params, float* m, float* v) override;
  void state_from_host(const float* params, const float* m, const float* v) override;

 private:
  using Model = models::GptModel<Ctx, T>;
  // The model's element type, as the communicators name it.
  static constexpr DType kDType = std::is_same_v<T, float> ? DType::f32 : DType::bf16;
  using Memory = decltype(allocate(std::declval<const Ctx&>(), size_t{}));
  // The flat parameters and gradients, which the data-parallel buckets and ZeRO-1 reduce and
  // gather (detail::collective_memory).
  using CollectiveMemory = decltype(detail::collective_memory(
      std::declval<const Ctx&>(), std::declval<comm::Communicator&>(), size_t{}));

  // parallel::PipelineStage
  void forward(int chunk, int micro_batch, const void* x) override;
  const void* output(int chunk, int micro_batch) override;
  void backward(int chunk, int micro_batch, const void* dy) override;
  void backward_input(int chunk, int micro_batch, const void* dy) override;
  void backward_weight(int chunk, int micro_batch) override;
  const void* input_grad(int chunk) override;
  void* boundary_buffer() override;
  void copy_boundary(void* dst, const void* src) override;
  // Waits for the work enqueued on the context (a GPU's stream; nothing on the CPU).
  void synchronize() override;

  // What reports a chunk's finished gradients to the data-parallel buckets: nothing before the
  // step's last micro-batch (only its backward finishes them).
  std::function<void(int)> ready_reporter(int chunk, int micro_batch);
  int slot(int micro_batch) const { return micro_batch % slots_; }
  const int32_t* tokens(const std::vector<int32_t>& all, int micro_batch) const;
  T* params(int chunk) { return as<T>(params_) + chunk_offset_[static_cast<size_t>(chunk)]; }
  T* grads(int chunk) { return as<T>(grads_) + chunk_offset_[static_cast<size_t>(chunk)]; }
  float* master() { return std::is_same_v<T, float> ? as<float>(params_) : as<float>(master_); }
  template <typename E, class M>
  static E* as(const M& m) {
    return static_cast<E*>(m.data());
  }
  // `value` reduced over `comm`, through the model's memory (native NCCL takes nothing else).
  double reduce_scalar(comm::Communicator& comm, double value, ReduceOp op);
  double grad_square_sum();  // this rank's share of the global norm's square
  void sum_tied_embedding();
  size_t boundary_bytes() const {
    return static_cast<size_t>(options_.micro_batch) * options_.model.seq * options_.model.d_model *
           sizeof(T);
  }

  TrainOptions options_;
  const Corpus& corpus_;
  comm::Communicator& world_;
  parallel::DeviceMesh mesh_;
  TrainDevice<Ctx> dev_;
  parallel::CommunicatorTpGroup tp_group_;
  int chunks_, micro_batches_, slots_ = 1;
  std::vector<std::unique_ptr<Model>> models_;  // one per chunk
  std::vector<size_t> chunk_offset_;            // of each chunk's tensors in the flat buffers
  std::vector<int> chunk_first_tensor_;         // index of each chunk's first tensor overall
  std::vector<models::ParamTensor> tensors_;    // every chunk's, offsets in the flat buffers
  int tied_wte_ = -1;      // the embedding copy summed over the embedding group (-1: none here)
  size_t parameters_ = 0;  // this rank's, every chunk's
  parallel::DataParallel dp_;
  CollectiveMemory params_, grads_;
  Memory master_;  // only for a bf16 model
  parallel::DeviceAdamW<Ctx, T> optimizer_;
  LrSchedule schedule_;
  parallel::PipelineExecutor executor_;
  parallel::Schedule pipeline_;  // every pipeline rank's actions, for the simulator
  double theoretical_idle_ = 0;
  double sim_cores_ = 0;  // the cores this rank's pipeline shares (0: a core, or a GPU, each)
  std::vector<Memory> boundaries_;
  Memory scalars_, partials_;                // reduce_scalar's, grad_square_sum's
  std::vector<int32_t> inputs_, targets_;    // the step's micro-batches, one after another
  double loss_sum_ = 0;                      // the step's micro-batch losses (last stage)
  double ms_forward_ = 0, ms_backward_ = 0;  // the step's compute
  bool dp_started_ = false;
  uint64_t initial_checksum_ = 0;
  TraceRecorder* trace_ = nullptr;
};

template <class Ctx, typename T>
ParallelTrainer<Ctx, T>::ParallelTrainer(const TrainOptions& options, const Corpus& corpus,
                                         comm::Communicator& world, int gpu)
    : options_(options),
      corpus_(corpus),
      world_(world),
      mesh_(world, detail::mesh_shape(options)),
      dev_(options, gpu),
      tp_group_(mesh_.tp(), dev_.device()),
      chunks_(options.virtual_stages),
      micro_batches_(options.accumulation()),
      dp_(
          mesh_.dp(),
          [&] {
            // Every chunk's tensors, one after another: the flat buffers' layout.
            std::vector<size_t> counts;
            for (int c = 0; c < chunks_; c++) {
              const models::GptLayout layout(options.model, detail::plan_of(options, mesh_, c));
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
          [&] {
            parallel::DataParallelOptions d = data_parallel_options(options);
            d.dtype = kDType;
            d.device = dev_.device();
            // Backward only enqueued the writes of a bucket (on a GPU): they must be done
            // before the communicator reads it on another stream.
            d.wait_for_grads = [this] { synchronize(); };
            return d;
          }()),
      params_(detail::collective_memory(dev_.ctx, mesh_.dp(), dp_.padded_elements() * sizeof(T))),
      grads_(detail::collective_memory(dev_.ctx, mesh_.dp(), dp_.padded_elements() * sizeof(T))),
      master_(allocate(dev_.ctx, std::is_same_v<T, float> ? 0 : dp_.padded_elements() * 4)),
      optimizer_(
          dev_.ctx, dp_.owned_ranges(),
          [&] {
            std::vector<parallel::DecaySpan> spans;
            for (const auto& t : tensors_) spans.push_back({t.offset, t.count, t.decay});
            return spans;
          }(),
          adamw_options(options)),
      schedule_{options.lr, options.warmup, options.steps},
      executor_(mesh_.pp(), detail::schedule_of(options)[static_cast<size_t>(mesh_.coords().pp)],
                parallel::PipelineShape{options.pp, chunks_, micro_batches_,
                                        static_cast<size_t>(options.micro_batch) *
                                            options.model.seq * options.model.d_model,
                                        kDType, dev_.device()}),
      scalars_(allocate(dev_.ctx, sizeof(double) * static_cast<size_t>(world.size()) * 2)),
      partials_(allocate(dev_.ctx, tensors_.size() * dp_.owned_ranges().size() *
                                       parallel::DeviceAdamW<Ctx, T>::kPartials * sizeof(float))) {
  pipeline_ = detail::schedule_of(options);
  const std::vector<parallel::Action>& mine = pipeline_[static_cast<size_t>(mesh_.coords().pp)];
  theoretical_idle_ = options.pp > 1 ? parallel::simulate_schedule(pipeline_).idle_fraction : 0.0;
  if (dev_.device().is_cpu()) sim_cores_ = pipeline_cores(options.pp, options.threads);
  // Activation slots: the most micro-batches whose activations this rank holds at once, from a
  // forward until the backward that frees them (zb's weight half, which comes later than the
  // input half); forwards and backwards both go in micro-batch order, so micro-batch % slots
  // never clashes.
  int held = 0;
  for (const parallel::Action& a : mine) {
    if (a.kind == parallel::ActionKind::forward) held++;
    if (a.kind == parallel::ActionKind::backward || a.kind == parallel::ActionKind::backward_weight)
      held--;
    slots_ = std::max(slots_, held);
  }
  slots_ = std::min(slots_, micro_batches_);
  // The same global weights as one rank's for the seed, made on the host, each rank keeping its
  // slices; a bf16 model computes with a copy of the f32 master weights.
  std::vector<float> host(dp_.padded_elements(), 0.0f);
  for (int c = 0; c < chunks_; c++) {
    const models::GptLayout layout(options.model, detail::plan_of(options, mesh_, c));
    models_.push_back(std::make_unique<Model>(dev_.ctx, layout, options.micro_batch, slots_,
                                              options.tp > 1 ? &tp_group_ : nullptr,
                                              options.schedule == "zb"));
    layout.init_params(host.data() + chunk_offset_[static_cast<size_t>(c)], options.seed);
    // The tied embedding's copies (first and last global stage) are summed over the group.
    if (mesh_.embedding() != nullptr && (layout.plan().first || layout.plan().last))
      tied_wte_ = chunk_first_tensor_[static_cast<size_t>(c)] + layout.wte();
  }
  copy_bytes(dev_.ctx, master(), host.data(), host.size() * sizeof(float));
  if constexpr (!std::is_same_v<T, float>) {
    std::vector<bf16> low(host.size());
    for (size_t i = 0; i < host.size(); i++) low[i] = bf16(host[i]);
    copy_bytes(dev_.ctx, params_.data(), low.data(), low.size() * sizeof(bf16));
  }
  synchronize();
  const size_t tokens =
      static_cast<size_t>(micro_batches_) * options.micro_batch * options.model.seq;
  inputs_.resize(tokens);
  targets_.resize(tokens);
  // Replicas along dp hold the same slices: each rank's checksum of its slices, combined over
  // its dp replica's ranks in mesh order, is the replica's, which check_replicas_agree compares.
  const std::vector<uint64_t> sums =
      allgather_words({checksum(host.data(), parameters_ * sizeof(float))});
  std::vector<uint64_t> replica;
  for (int r = 0; r < world.size(); r++)
    if (parallel::mesh_coords(mesh_.shape(), r).dp == mesh_.coords().dp)
      replica.push_back(sums[static_cast<size_t>(r)]);
  initial_checksum_ = checksum(replica.data(), replica.size() * sizeof(uint64_t));
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::synchronize() {
  detail::wait_for(dev_.ctx);
}

template <class Ctx, typename T>
std::vector<uint64_t> ParallelTrainer<Ctx, T>::allgather_words(const std::vector<uint64_t>& mine) {
  // Through the model's memory, like reduce_scalar().
  const size_t n = mine.size(), ranks = static_cast<size_t>(world_.size());
  Memory in = allocate(dev_.ctx, n * sizeof(uint64_t)),
         out = allocate(dev_.ctx, n * ranks * sizeof(uint64_t));
  copy_bytes(dev_.ctx, in.data(), mine.data(), n * sizeof(uint64_t));
  synchronize();
  world_
      .allgather(Tensor::flat(in.data(), DType::i64, n, dev_.device()),
                 Tensor::flat(out.data(), DType::i64, n * ranks, dev_.device()))
      .wait();
  std::vector<uint64_t> all(n * ranks);
  copy_bytes(dev_.ctx, all.data(), out.data(), all.size() * sizeof(uint64_t));
  synchronize();
  return all;
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::send_bytes(const void* data, size_t bytes, int peer) {
  // Through the model's memory, like allgather_words().
  Memory staged = allocate(dev_.ctx, bytes);
  copy_bytes(dev_.ctx, staged.data(), data, bytes);
  synchronize();
  world_.send(Tensor::flat(staged.data(), DType::u8, bytes, dev_.device()), peer).wait();
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::recv_bytes(void* data, size_t bytes, int peer) {
  Memory staged = allocate(dev_.ctx, bytes);
  world_.recv(Tensor::flat(staged.data(), DType::u8, bytes, dev_.device()), peer).wait();
  copy_bytes(dev_.ctx, data, staged.data(), bytes);
  synchronize();
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::set_trace(TraceRecorder* trace) {
  trace_ = trace;
  dp_.set_trace(trace);
  executor_.set_trace(trace);
}

template <class Ctx, typename T>
double ParallelTrainer<Ctx, T>::reduce_scalar(comm::Communicator& comm, double value, ReduceOp op) {
  if (comm.size() == 1) return value;
  copy_bytes(dev_.ctx, scalars_.data(), &value, sizeof value);
  synchronize();
  comm.allreduce(Tensor::flat(scalars_.data(), DType::f64, 1, dev_.device()), op).wait();
  copy_bytes(dev_.ctx, &value, scalars_.data(), sizeof value);
  synchronize();
  return value;
}

template <class Ctx, typename T>
std::string ParallelTrainer<Ctx, T>::activation_memory_line() {
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

template <class Ctx, typename T>
CheckpointLayout ParallelTrainer<Ctx, T>::checkpoint_layout() const {
  CheckpointLayout l;
  l.tensors = tensors_;
  for (int c = 0; c < chunks_; c++) {
    const models::GptLayout& layout = models_[static_cast<size_t>(c)]->layout();
    for (int i = 0; i < static_cast<int>(layout.tensors().size()); i++) {
      const models::ParamTensor& t = layout.tensors()[static_cast<size_t>(i)];
      // A tensor every tp rank holds whole is tp rank 0's to write; the tied head's copy of the
      // embedding is the first stage's.
      l.writes.push_back((t.split_dim >= 0 || mesh_.coords().tp == 0) &&
                         !(i == layout.wte() && !layout.plan().first));
    }
  }
  l.segments = optimizer_.segments();
  l.elements = dp_.padded_elements();
  l.writes_params = mesh_.coords().dp == 0;
  l.writes_moments = options_.zero1 || mesh_.coords().dp == 0;
  return l;
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::state_to_host(float* params, float* m, float* v) {
  const size_t state = parallel::state_elements(optimizer_.segments()) * sizeof(float);
  copy_bytes(dev_.ctx, params, master(), dp_.padded_elements() * sizeof(float));
  copy_bytes(dev_.ctx, m, optimizer_.first_moment(), state);
  copy_bytes(dev_.ctx, v, optimizer_.second_moment(), state);
  synchronize();
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::state_from_host(const float* params, const float* m, const float* v) {
  const size_t state = parallel::state_elements(optimizer_.segments()) * sizeof(float);
  copy_bytes(dev_.ctx, master(), params, dp_.padded_elements() * sizeof(float));
  copy_bytes(dev_.ctx, optimizer_.first_moment(), m, state);
  copy_bytes(dev_.ctx, optimizer_.second_moment(), v, state);
  std::vector<bf16> low;  // lives until the copies are done
  if constexpr (!std::is_same_v<T, float>) {
    // The model computes with a bf16 copy of the master weights, as at initialisation.
    low.resize(dp_.padded_elements());
    for (size_t i = 0; i < low.size(); i++) low[i] = bf16(params[i]);
    copy_bytes(dev_.ctx, params_.data(), low.data(), low.size() * sizeof(bf16));
  }
  synchronize();
}

template <class Ctx, typename T>
const int32_t* ParallelTrainer<Ctx, T>::tokens(const std::vector<int32_t>& all,
                                               int micro_batch) const {
  return all.data() + static_cast<size_t>(micro_batch) * options_.micro_batch * options_.model.seq;
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::forward(int chunk, int micro_batch, const void* x) {
  const Clock::time_point start = Clock::now();
  Model& m = *models_[static_cast<size_t>(chunk)];
  m.forward(slot(micro_batch), params(chunk), tokens(inputs_, micro_batch),
            tokens(targets_, micro_batch), static_cast<const T*>(x), options_.micro_batch);
  if (m.layout().plan().last) loss_sum_ += m.mean_loss(slot(micro_batch));
  ms_forward_ += ms_since(start);
}

template <class Ctx, typename T>
const void* ParallelTrainer<Ctx, T>::output(int chunk, int micro_batch) {
  return models_[static_cast<size_t>(chunk)]->output(slot(micro_batch));
}

template <class Ctx, typename T>
std::function<void(int)> ParallelTrainer<Ctx, T>::ready_reporter(int chunk, int micro_batch) {
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

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::backward(int chunk, int micro_batch, const void* dy) {
  const Clock::time_point start = Clock::now();
  models_[static_cast<size_t>(chunk)]->backward(slot(micro_batch), params(chunk), grads(chunk),
                                                loss_scale(options_), static_cast<const T*>(dy),
                                                ready_reporter(chunk, micro_batch));
  ms_backward_ += ms_since(start);
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::backward_input(int chunk, int micro_batch, const void* dy) {
  const Clock::time_point start = Clock::now();
  models_[static_cast<size_t>(chunk)]->backward_input(slot(micro_batch), params(chunk),
                                                      grads(chunk), loss_scale(options_),
                                                      static_cast<const T*>(dy));
  ms_backward_ += ms_since(start);
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::backward_weight(int chunk, int micro_batch) {
  const Clock::time_point start = Clock::now();
  models_[static_cast<size_t>(chunk)]->backward_weight(slot(micro_batch), grads(chunk),
                                                       ready_reporter(chunk, micro_batch));
  ms_backward_ += ms_since(start);
}

template <class Ctx, typename T>
const void* ParallelTrainer<Ctx, T>::input_grad(int chunk) {
  return models_[static_cast<size_t>(chunk)]->input_grad();
}

template <class Ctx, typename T>
void* ParallelTrainer<Ctx, T>::boundary_buffer() {
  boundaries_.push_back(allocate(dev_.ctx, boundary_bytes()));
  return boundaries_.back().data();
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::copy_boundary(void* dst, const void* src) {
  copy_bytes(dev_.ctx, dst, src, boundary_bytes());
}

template <class Ctx, typename T>
void ParallelTrainer<Ctx, T>::sum_tied_embedding() {
  if (tied_wte_ < 0) return;
  const TraceScope span(trace_, TraceRow::compute, "tied embedding allreduce");
  const models::ParamTensor& t = tensors_[static_cast<size_t>(tied_wte_)];
  synchronize();
  mesh_.embedding()
      ->allreduce(Tensor::flat(as<T>(grads_) + t.offset, kDType, t.count, dev_.device()))
      .wait();
  dp_.grad_ready(tied_wte_);
}

template <class Ctx, typename T>
double ParallelTrainer<Ctx, T>::grad_square_sum() {
  // Without ZeRO-1 every dp replica holds the whole averaged gradient: one replica counts.
  if (!options_.zero1 && mesh_.coords().dp != 0) return 0;
  constexpr int kPartials = parallel::DeviceAdamW<Ctx, T>::kPartials;
  float* partials = as<float>(partials_);
  size_t used = 0;
  for (size_t i = 0; i < tensors_.size(); i++) {
    const models::ParamTensor& t = tensors_[i];
    // A tensor whole on every tp rank is counted by tp rank 0; the tied embedding's copy on
    // the last stage is the first stage's, counted there.
    if (t.split_dim < 0 && mesh_.coords().tp != 0) continue;
    if (static_cast<int>(i) == tied_wte_ && !mesh_.first_stage()) continue;
    for (const parallel::ShardRange& r : dp_.owned_ranges()) {
      const size_t begin = std::max(r.offset, t.offset);
      const size_t end = std::min(r.offset + r.count, t.offset + t.count);
      if (begin >= end) continue;
      square_sum_partials(dev_.ctx, as<T>(grads_) + begin, end - begin,
                          partials + used * kPartials);
      used++;
    }
  }
  std::vector<float> host(used * kPartials);
  copy_bytes(dev_.ctx, host.data(), partials, host.size() * sizeof(float));
  synchronize();
  double sq = 0;
  for (float p : host) sq += p;
  return sq;
}

template <class Ctx, typename T>
StepStats ParallelTrainer<Ctx, T>::step(int step) {
  StepStats s;
  s.step = step;
  s.lr = schedule_.at(step);
  const TraceScope whole(trace_, TraceRow::compute, "step", {{"step", step}});
  const Clock::time_point start = Clock::now();
  zero_bytes(dev_.ctx, grads_.data(), grads_.size());
  const size_t per_micro = static_cast<size_t>(options_.micro_batch) * options_.model.seq;
  for (int m = 0; m < micro_batches_; m++)
    load_micro_batch(corpus_, options_, mesh_.coords().dp, options_.dp, step, m,
                     inputs_.data() + m * per_micro, targets_.data() + m * per_micro);
  loss_sum_ = ms_forward_ = ms_backward_ = 0;
  dp_started_ = false;
  const parallel::PipelineTimes pipeline = executor_.run(*this);
  s.ms_forward = ms_forward_;
  s.ms_backward = ms_backward_;
  if (options_.tp > 1) s.ms_tp_comm = tp_group_.take_seconds() * 1e3;
  sum_tied_embedding();
  {
    const TraceScope span(trace_, TraceRow::compute, "wait for gradient buckets");
    record_comm(s, dp_.finish());
  }

  Clock::time_point t = Clock::now();
  {
    const TraceScope span(trace_, TraceRow::compute, "optimizer");
    s.grad_norm = std::sqrt(reduce_scalar(world_, grad_square_sum(), ReduceOp::sum));
    if (const float f = clip_factor(options_, s.grad_norm); f < 1.0f)
      optimizer_.scale_grads(as<T>(grads_), f);
    optimizer_.step(master(), as<T>(params_), as<T>(grads_), static_cast<float>(s.lr), step);
    synchronize();  // the parameter gather reads the updated shard on another stream
    dp_.gather_params(params_.data());
    synchronize();
  }
  s.ms_optimizer = ms_since(t);

  // The loss lives on the last stage: summed over the pipeline (the others add 0), averaged
  // over the data-parallel replicas.
  const double loss = mesh_.last_stage() ? loss_sum_ / micro_batches_ : 0.0;
  s.loss =
      reduce_scalar(mesh_.dp(), reduce_scalar(mesh_.pp(), loss, ReduceOp::sum), ReduceOp::sum) /
      options_.dp;
  if (options_.pp > 1) {
    // Measured against simulated idle, over this rank's pipeline: every rank's step, gathered
    // (the world's, for the placement of the other pipelines' ranks on this node's CPUs).
    const std::vector<uint64_t> all = allgather_words(
        to_words(stage_step(pipeline, dev_.device().is_cpu() && options_.threads <= 1), pipeline_));
    const auto steps = pipeline_steps(all, pipeline_, mesh_.shape(), mesh_.coords());
    PipelineFigures f = pipeline_figures(pipeline_, steps, sim_cores_);
    // A GPU's computes are only enqueued here: their times are launch costs, so the simulator
    // would replay the wrong costs. Only the measured idle is reported there.
    if (!dev_.device().is_cpu()) f.idle_sim = f.idle_replay = -1;
    record_pipeline(s, f);
  }
  // After the figures' gather, so the step's time and rates include what measuring cost.
  record_rates(s, options_, start);
  return s;
}

template <class Ctx, typename T>
EvalStats ParallelTrainer<Ctx, T>::evaluate(int step) {
  // Forward only, one micro-batch after another through the stages in order: a chain of
  // blocking sends and receives that never waits on itself.
  const int micro = options_.micro_batch, seq = options_.model.seq, C = options_.model.d_model;
  const int per_rank = options_.batch / options_.dp, P = options_.pp;
  const int rank = mesh_.coords().pp;
  comm::Communicator& pp = mesh_.pp();
  T* received = static_cast<T*>(boundary_buffer());
  double loss = 0;
  int batches = 0;
  for (int first = 0; first < per_rank; first += micro, batches++) {
    const int count = std::min(micro, per_rank - first);
    const size_t elements = static_cast<size_t>(count) * seq * C;
    corpus_.eval_batch(static_cast<uint64_t>(mesh_.coords().dp * per_rank + first), count, seq,
                       inputs_.data(), targets_.data());
    for (int c = 0; c < chunks_; c++) {
      Model& m = *models_[static_cast<size_t>(c)];
      const bool first_stage = m.layout().plan().first, last_stage = m.layout().plan().last;
      if (!first_stage)
        pp.recv(Tensor::flat(received, kDType, elements, dev_.device()), (rank + P - 1) % P).wait();
      m.forward(0, params(c), inputs_.data(), targets_.data(), first_stage ? nullptr : received,
                count);
      if (last_stage) {
        loss += m.mean_loss(0);
      } else {
        synchronize();
        pp.send(Tensor::flat(const_cast<T*>(m.output(0)), kDType, elements, dev_.device()),
                (rank + 1) % P)
            .wait();
      }
    }
  }
  boundaries_.pop_back();  // the receive buffer: this evaluation's only
  const double mean = mesh_.last_stage() ? loss / batches : 0.0;
  EvalStats e;
  e.step = step;
  e.loss =
      reduce_scalar(mesh_.dp(), reduce_scalar(mesh_.pp(), mean, ReduceOp::sum), ReduceOp::sum) /
      options_.dp;
  e.perplexity = std::exp(e.loss);
  return e;
}

}  // namespace weft::train
