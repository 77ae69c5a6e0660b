#pragma once
// weft-train on a GPU (--device cuda): the same data-parallel loop as the CPU Trainer, over
// models/gpt_cuda.h. The model computes in bf16 (or f32 with --precision f32); the optimizer
// keeps f32 master weights and moments on the GPU. Gradient buckets are reduced as CUDA
// tensors while backward goes on: by NCCL as they are (--backend nccl, one GPU per rank), or
// through pinned host memory by the host backends (ranks may then share a GPU).
#include <memory>

#include "comm/communicator.h"
#include "train/corpus.h"
#include "train/train_options.h"
#include "train/training_run.h"

namespace weft::train {

// The GPU a rank trains on: cuda:(local_rank mod the GPUs this process sees). Throws
// Unavailable when weft was built without CUDA or no GPU can be used: call it before the
// rendezvous, so a rank without a GPU stops before its peers wait for it.
int training_device(int local_rank);
// Throws InvalidArgument when the node's ranks that train on cuda:`device` (of `local_size`
// here, `ranks` in all) would need more of its memory than is free: before the rendezvous.
void check_gpu_memory(const TrainOptions& options, int ranks, int local_size, int device);
// A trainer on cuda:`device` (from training_device).
std::unique_ptr<TrainingRun> make_cuda_trainer(const TrainOptions& options, const Corpus& corpus,
                                               comm::Communicator& comm, int device);

}  // namespace weft::train
