// The GPU trainer in a build without CUDA: says so.
#include "train/cuda_trainer.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

[[noreturn]] void built_without_cuda() {
  throw Error(ErrorCode::Unavailable,
              "--device cuda: this weft-train was built without CUDA (no nvcc was found when it "
              "was configured); rebuild where the CUDA toolkit is installed, or use --device cpu");
}

}  // namespace

int training_device(int) { built_without_cuda(); }

void check_gpu_memory(const TrainOptions&, int, int, int) { built_without_cuda(); }

std::unique_ptr<CutModelRun> make_cuda_trainer(const TrainOptions&, const Corpus&,
                                               comm::Communicator&, int) {
  built_without_cuda();
}

}  // namespace weft::train
