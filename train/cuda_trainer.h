#pragma once
// weft-train on a GPU (--device cuda): the ParallelTrainer (parallel_trainer.h) over
// models/gpt_cuda.h, for every dp x tp x pp layout. The model computes in bf16 (or f32 with
// --precision f32); the optimizer keeps f32 master weights and moments on the GPU. Gradient
// buckets, activations and tp reductions are CUDA tensors: NCCL moves them as they are
// (--backend nccl, one GPU per rank), the host backends through pinned host memory (ranks may
// then share a GPU).
#include <memory>

#include "comm/communicator.h"
#include "train/corpus.h"
#include "train/train_options.h"
#include "train/parallel_trainer.h"

namespace weft::train {

// The GPU a rank trains on: cuda:(local_rank mod the GPUs this process sees). Throws
// Unavailable when weft was built without CUDA or no GPU can be used: call it before the
// rendezvous, so a rank without a GPU stops before its peers wait for it.
int training_device(int local_rank);
// Throws InvalidArgument when the node's ranks that train on cuda:`device` (of `local_size`
// here, `ranks` in all) would need more of its memory than is free: before the rendezvous.
void check_gpu_memory(const TrainOptions& options, int ranks, int local_size, int device);
// A trainer on cuda:`device` (from training_device), for every dp x tp x pp layout.
std::unique_ptr<CutModelRun> make_cuda_trainer(const TrainOptions& options, const Corpus& corpus,
                                               comm::Communicator& world, int device);

}  // namespace weft::train
