#pragma once
// Training with the model cut: dp x tp x pp (parallel/mesh.h). Each rank holds its pipeline
// rank's model chunks (virtual stages), each chunk its tensor-parallel share (models/gpt_model.h),
// and runs one step as its list of pipeline actions (parallel/schedule.h) through the
// PipelineExecutor; gradient buckets are averaged (or, with ZeRO-1, reduce-scattered) over the
// data-parallel group while the last micro-batch's backward goes on, inside each (tp, pp)
// coordinate; the first and last stages sum the tied embedding's gradient (Megatron's
// embedding group). The loss, gradient norm and evaluation loss are the job's global ones on
// every rank, though only the last stage computes the loss.
#include <memory>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "models/gpt.h"
#include "parallel/data_parallel.h"
#include "parallel/mesh.h"
#include "parallel/pipeline_executor.h"
#include "parallel/sharded_adamw.h"
#include "parallel/tensor_parallel_group.h"
#include "runtime/buffer.h"
#include "train/corpus.h"
#include "train/lr_schedule.h"
#include "train/train_options.h"
#include "train/training_run.h"

namespace weft::train {

class ParallelTrainer final : public TrainingRun, private parallel::PipelineStage {
 public:
  // `options` resolved for world.size() ranks. Builds the mesh (collective over `world`) and
  // initialises this rank's slices of the global weights from the seed.
  ParallelTrainer(const TrainOptions& options, const Corpus& corpus, comm::Communicator& world);
  ~ParallelTrainer() override;

  StepStats step(int step) override;
  EvalStats evaluate(int step) override;
  size_t parameter_count() const override { return parameters_; }
  uint64_t initial_checksum() const override { return initial_checksum_; }
  std::vector<uint64_t> allgather_words(const std::vector<uint64_t>& mine) override;

  const parallel::DeviceMesh& mesh() const { return mesh_; }
  // The schedule's idle fraction under unit costs (parallel/schedule_sim.h), for the first line.
  double theoretical_idle() const { return theoretical_idle_; }
  // "activation memory per pipeline stage: 0: 1.2 MiB, 1: 0.9 MiB": every stage's peak
  // (tp rank 0's; the others hold the same). Collective over the world.
  std::string activation_memory_line();

 private:
  // parallel::PipelineStage
  void forward(int chunk, int micro_batch, const void* x) override;
  const void* output(int chunk, int micro_batch) override;
  void backward(int chunk, int micro_batch, const void* dy) override;
  void backward_input(int chunk, int micro_batch, const void* dy) override;
  void backward_weight(int chunk, int micro_batch) override;
  // What reports a chunk's finished gradients to the data-parallel buckets: nothing before the
  // step's last micro-batch (only its backward finishes them).
  std::function<void(int)> ready_reporter(int chunk, int micro_batch);
  const void* input_grad(int chunk) override;
  void* boundary_buffer() override;
  void copy_boundary(void* dst, const void* src) override;

  int slot(int micro_batch) const { return micro_batch % slots_; }
  const int32_t* tokens(const std::vector<int32_t>& all, int micro_batch) const;
  float* chunk_params(int chunk) { return params_.as<float>() + chunk_offset_[chunk]; }
  float* chunk_grads(int chunk) { return grads_.as<float>() + chunk_offset_[chunk]; }
  double grad_square_sum() const;  // this rank's share of the global norm's square
  void sum_tied_embedding();

  TrainOptions options_;
  const Corpus& corpus_;
  comm::Communicator& world_;
  parallel::DeviceMesh mesh_;
  kernels::cpu::CpuContext cpu_;
  kernels::cpu::BlasThreads blas_threads_;
  parallel::CommunicatorTpGroup tp_group_;
  int chunks_, micro_batches_, slots_;
  std::vector<std::unique_ptr<models::Gpt>> models_;  // one per chunk
  std::vector<size_t> chunk_offset_;       // of each chunk's tensors in the flat buffers
  std::vector<int> chunk_first_tensor_;    // index of each chunk's first tensor overall
  std::vector<models::ParamTensor> tensors_;  // every chunk's, offsets in the flat buffers
  int tied_wte_ = -1;  // the embedding copy summed over the embedding group (-1: none here)
  size_t parameters_ = 0;  // this rank's, every chunk's
  parallel::DataParallel dp_;
  Buffer params_, grads_;
  parallel::ShardedAdamW optimizer_;
  LrSchedule schedule_;
  parallel::PipelineExecutor executor_;
  double theoretical_idle_ = 0;
  std::vector<Buffer> boundaries_;
  std::vector<int32_t> inputs_, targets_;  // the step's micro-batches, one after another
  double loss_sum_ = 0;                    // the step's micro-batch losses (last stage)
  double ms_forward_ = 0, ms_backward_ = 0;  // the step's compute
  bool dp_started_ = false;
  uint64_t initial_checksum_ = 0;
};

}  // namespace weft::train
