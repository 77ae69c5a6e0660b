// ParallelTrainer on the CPU: the device is the rank's threads.
#include "kernels/context.h"
#include "kernels/grad_norm.h"
#include "kernels/memory.h"
#include "models/gpt.h"
#include "train/parallel_trainer_impl.h"

namespace weft::train {

template <>
struct TrainDevice<kernels::cpu::CpuContext> {
  // The rank's kernels run with --threads threads; OpenBLAS's process-wide count is held at the
  // same while the trainer lives, so no kernel has to change it per call.
  kernels::cpu::CpuContext ctx;
  kernels::cpu::BlasThreads blas;
  TrainDevice(const TrainOptions& o, int) : ctx(o.threads), blas(o.threads) {}
  Device device() const { return Device::cpu(); }
};

template class ParallelTrainer<kernels::cpu::CpuContext, float>;

std::unique_ptr<CutModelRun> make_parallel_trainer(const TrainOptions& options,
                                                   const Corpus& corpus,
                                                   comm::Communicator& world) {
  return std::make_unique<ParallelTrainer<kernels::cpu::CpuContext, float>>(options, corpus,
                                                                            world, -1);
}

}  // namespace weft::train
