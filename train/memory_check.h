#pragma once
// Whether the machine has the memory that weft-train's flags ask for, checked before anything is
// allocated: a model too big for the machine is a usage error that says how much the flags need
// and how much there is, not an allocation failure half way through setting up.
#include <optional>
#include <string>

#include "train/train_options.h"

namespace weft::train {

// What one rank allocates, in bytes: the flat buffers (parameters, gradients, AdamW's moments,
// the lanes' gradients, the bf16 wire copy) and the model's activations with backward's scratch.
struct MemoryNeed {
  double state = 0;
  double activations = 0;
  double total() const { return state + activations; }
};
// In host memory, for `ranks` data-parallel ranks (ZeRO-1 shards the moments) and `lanes` lanes.
// With --device cuda only the host copy the parameters are initialised in. With --ckpt-dir, also
// the checkpoints' snapshot of the parameters and moments.
MemoryNeed host_memory_need(const TrainOptions& o, int ranks, int lanes);
// With --device cuda, on the GPU.
MemoryNeed gpu_memory_need(const TrainOptions& o, int ranks);

// MemAvailable of a /proc/meminfo text, in bytes; nullopt when it has none.
std::optional<double> mem_available(const std::string& meminfo);
// MemAvailable of this machine's /proc/meminfo.
std::optional<double> host_memory_available();

// Throws InvalidArgument when `sharing` ranks that need `need` each do not fit in `available`
// bytes of `where` ("memory", "cuda:0's memory"; `source` says where the figure comes from),
// saying both and naming the flags that decide the need.
void check_memory_fits(const TrainOptions& o, const MemoryNeed& need, int sharing, double available,
                       const std::string& where, const std::string& source);

}  // namespace weft::train
