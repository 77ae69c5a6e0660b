#pragma once
// What the NCCL folder offers the backend registry. Built without CUDA or NCCL, the factories
// throw Unavailable saying so and nccl_visible_gpus() is 0 (nccl_unavailable.cc).
#include <memory>

#include "comm/native_backend.h"
#include "comm/rendezvous/store.h"
#include "comm/transport_setup.h"

namespace weft {
struct World;
}

namespace weft::comm {

// ncclSend/ncclRecv on a stream of cuda:`cuda_device`, one GPU per rank; meets through the
// store (NCCL's unique id). Moves device memory, and host memory staged through the GPU.
// Throws Unavailable without that device.
std::unique_ptr<Transport> make_nccl_transport(const TransportSetup& setup, int cuda_device);

// The native NCCL backend over world.size ranks, one GPU each: this rank's buffers live on
// cuda:`device` (usually world.local_rank). Rank 0 publishes NCCL's unique id in `store`
// (scoped to the group, e.g. a PrefixStore "world"); the others wait for it until `deadline`.
// Throws Unavailable without that device.
std::unique_ptr<NativeBackend> make_native_nccl_backend(const World& world,
                                                        std::shared_ptr<Store> store, int device,
                                                        Deadline deadline);

// The GPUs native NCCL could use in this process: 0 when weft was built without CUDA or NCCL,
// or no GPU is visible. Backend auto routes CUDA tensors to NCCL when each local rank has one.
int nccl_visible_gpus();

}  // namespace weft::comm
