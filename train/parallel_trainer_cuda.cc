// ParallelTrainer on a GPU (--device cuda), every layout: the device is a GPU, its stream and
// handles; the model computes in bf16 (or f32 with --precision f32) with f32 master weights.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/cuda/memory.h"
#include "models/gpt_cuda.h"
#include "parallel/cuda_sharded_adamw.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_stream.h"
#include "runtime/error.h"
#include "train/cuda_trainer.h"
#include "train/memory_check.h"
#include "train/parallel_trainer_impl.h"

namespace weft::train {

template <>
struct TrainDevice<kernels::cuda::CudaContext> {
  int index;
  CudaDeviceGuard on_device;  // kernels launch on the current device
  CudaStream stream;
  kernels::cuda::CudaContext ctx;  // the model's and the optimizer's kernels, on `stream`
  TrainDevice(const TrainOptions&, int gpu)
      : index(gpu), on_device(gpu), stream(gpu), ctx(gpu, stream.get()) {}
  Device device() const { return Device::cuda(index); }
};

template class ParallelTrainer<kernels::cuda::CudaContext, float>;
template class ParallelTrainer<kernels::cuda::CudaContext, __nv_bfloat16>;

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

std::unique_ptr<CutModelRun> make_cuda_trainer(const TrainOptions& options, const Corpus& corpus,
                                               comm::Communicator& world, int device) {
  using Ctx = kernels::cuda::CudaContext;
  if (options.precision == "f32")
    return std::make_unique<ParallelTrainer<Ctx, float>>(options, corpus, world, device);
  return std::make_unique<ParallelTrainer<Ctx, __nv_bfloat16>>(options, corpus, world, device);
}

}  // namespace weft::train
