#pragma once
// Training with the model cut: dp x tp x pp (parallel/mesh.h), written once over the device
// (train/parallel_trainer_impl.h). Each rank holds its pipeline rank's model chunks (virtual
// stages), each chunk its tensor-parallel share (models/gpt_model.h), and runs one step as its
// list of pipeline actions (parallel/schedule.h) through the PipelineExecutor; gradient buckets
// are averaged (or, with ZeRO-1, reduce-scattered) over the data-parallel group while the last
// micro-batch's backward goes on, inside each (tp, pp) coordinate; the first and last stages
// sum the tied embedding's gradient (Megatron's embedding group). The loss, gradient norm and
// evaluation loss are the job's global ones on every rank, though only the last stage computes
// the loss.
//
// It trains every layout on a GPU (cuda_trainer.h's make_cuda_trainer), and the cut ones on the
// CPU; a CPU model that is only replicated takes the Trainer (trainer.h), whose lanes split
// each micro-batch over a rank's threads.
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "train/corpus.h"
#include "train/train_options.h"
#include "train/training_run.h"

namespace weft::train {

// What weft-train prints about a cut model besides the steps.
class CutModelRun : public TrainingRun {
 public:
  // The schedule's idle fraction under unit costs (parallel/schedule_sim.h), for the first line.
  virtual double theoretical_idle() const = 0;
  // "activation memory per pipeline stage: 0: 1.2 MiB, 1: 0.9 MiB": every stage's peak (tp
  // rank 0's; the others hold the same). Collective over the world.
  virtual std::string activation_memory_line() = 0;
  // Collectives of this rank's data-parallel group so far that ran in place on registered
  // memory (Communicator::direct_ops): which path the gradient buckets took.
  virtual uint64_t dp_direct_ops() = 0;
};

// On the CPU, `options` resolved for world.size() ranks. Builds the mesh (collective over
// `world`) and initialises this rank's slices of the global weights from the seed.
std::unique_ptr<CutModelRun> make_parallel_trainer(const TrainOptions& options,
                                                   const Corpus& corpus,
                                                   comm::Communicator& world);

}  // namespace weft::train
