#pragma once
// Runs one pipeline rank's list of actions (parallel/schedule.h) for one training step: its
// forwards and backwards on the model chunks it holds, and the activations and gradients it
// sends to and receives from its neighbours on the pipeline communicator. A run of p2p actions
// linked by `batched_with_next` goes as one Communicator::batch_p2p, so two neighbours that
// each send to the other (1F1B's steady state) never both block in their sends.
//
// The executor knows nothing of the model: a PipelineStage does the compute and owns the
// tensors that cross stage boundaries (one [micro-batch, seq, d_model] tensor per message, on
// the model's device), so the same executor serves every device and element type.
#include <array>
#include <cstddef>
#include <vector>

#include "comm/communicator.h"
#include "parallel/schedule.h"
#include "runtime/tensor.h"
#include "runtime/trace.h"

namespace weft::parallel {

// What a pipeline rank computes. `chunk` is the model chunk on this rank (global stage
// chunk x stages + rank); a micro-batch's forward and backward of one chunk always use the
// same activation slot, which the stage picks from the micro-batch.
class PipelineStage {
 public:
  virtual ~PipelineStage() = default;
  // x: the previous stage's output for this micro-batch, or null on the first global stage.
  virtual void forward(int chunk, int micro_batch, const void* x) = 0;
  // The forward's output, valid until the micro-batch's backward on this chunk.
  virtual const void* output(int chunk, int micro_batch) = 0;
  // dy: the gradient of the forward's output, or null on the last global stage (the loss).
  virtual void backward(int chunk, int micro_batch, const void* dy) = 0;
  // Zero-bubble's halves of backward: the input's gradient (and what it needs), then the
  // weights' gradients, later. Stages that never run zb need not implement them.
  virtual void backward_input(int chunk, int micro_batch, const void* dy);
  virtual void backward_weight(int chunk, int micro_batch);
  // The gradient of the last backward's input x, valid until the chunk's next backward.
  virtual const void* input_grad(int chunk) = 0;
  // Memory for one boundary tensor on the model's device, owned by the stage, alive as long as
  // it: the executor asks once per (kind, chunk, micro-batch) it must hold.
  virtual void* boundary_buffer() = 0;
  // Copies one boundary tensor (on the model's device; done when the next compute starts).
  virtual void copy_boundary(void* dst, const void* src) = 0;
  // Waits until the compute enqueued so far is done (a GPU's stream), before its outputs go to
  // the communicator, which reads them on a stream of its own. Nothing to wait for on a CPU.
  virtual void synchronize() {}
};

struct PipelineShape {
  int stages = 1;          // pipeline ranks
  int virtual_stages = 1;  // chunks per rank
  int micro_batches = 1;
  size_t boundary_elements = 0;  // of one boundary tensor
  DType dtype = DType::f32;
  Device device = Device::cpu();
};

// Where a step's pipeline time went on this rank (train/pipeline_figures.h makes the
// pipeline's idle fraction of it). Its idle time is the time in its exchanges: waiting for a
// neighbour's tensor (the bubble) and copying it. Time the rank was runnable but had no core is
// not waiting for a neighbour: inside an exchange (woken by its message while every core was
// busy) it is counted apart, in `descheduled_seconds`, to be left out; anywhere else it is
// compute time (the compute ran slower, as the simulator's shared cores say), and so is the
// executor's own bookkeeping between actions.
struct PipelineTimes {
  double seconds = 0;              // from the first action's start to the last one's end
  double exchange_seconds = 0;     // wall time inside exchanges
  double descheduled_seconds = 0;  // of that, runnable with no core (0: unknown)
  // Per compute kind (forward, backward, backward_input, backward_weight): how many ran, their
  // wall time, and the thread's CPU time in them: each compute's cost on a core of its own
  // where the kernels run on the calling thread (one thread per rank).
  std::array<int, 4> computes{};
  std::array<double, 4> compute_wall{};
  std::array<double, 4> compute_cpu{};
  // The shortest exchange per message it carried: a copy that found its peer ready (-1: none).
  double shortest_copy = -1;
  std::vector<double> durations;  // each compute's wall time, in the order they ran
  // Where the kernel placed each compute, in order: the CPU it ran on (-1: it moved from one
  // to another, or the kernel does not say), for a simulator that shares each CPU among the
  // ranks on it. A rank mostly moves while it waits, so most computes stay on one CPU.
  std::vector<int> cpus;

  // Each kind's mean cost (the CPU time, or the wall time when `cpu` is false; 0 where none
  // ran) and shortest_copy as the transfer: the simulator's costs for this rank.
  ActionCosts costs(bool cpu) const;
};

class PipelineExecutor {
 public:
  // `pp` is the pipeline communicator (rank = pipeline rank); `actions` this rank's list.
  PipelineExecutor(comm::Communicator& pp, std::vector<Action> actions, PipelineShape shape);

  // Runs every action once, in order.
  PipelineTimes run(PipelineStage& stage);
  // Where each action goes on the rank's timeline (its compute row: the computes as the stage
  // ran or enqueued them, each with its CPU time, and each p2p exchange from its start to its
  // end); null: nowhere.
  void set_trace(TraceRecorder* trace) { trace_ = trace; }

 private:
  // Inputs received (or handed over between chunks of this rank), output gradients received,
  // and input gradients kept until they are sent.
  enum Boundary { kInput, kOutputGrad, kInputGrad, kBoundaries };
  void* buffer(PipelineStage& stage, Boundary kind, int chunk, int micro_batch);
  Tensor tensor(void* data) const;
  bool first_global(int chunk) const { return rank_ == 0 && chunk == 0; }
  bool last_global(int chunk) const {
    return rank_ == shape_.stages - 1 && chunk == shape_.virtual_stages - 1;
  }

  comm::Communicator& pp_;
  std::vector<Action> actions_;
  PipelineShape shape_;
  int rank_;
  std::vector<void*> buffers_;  // per (Boundary, chunk, micro-batch), made on first use
  TraceRecorder* trace_ = nullptr;
};

}  // namespace weft::parallel
