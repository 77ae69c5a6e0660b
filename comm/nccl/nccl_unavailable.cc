// Stand-ins for the NCCL entry points when weft is built without CUDA or without NCCL: each
// fails with a clear message, and nothing else in weft needs to know.
#include "comm/native_backend.h"
#include "comm/nccl/backends.h"
#include "comm/transport_setup.h"
#include "runtime/error.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

[[noreturn]] void no_nccl(int rank, const char* backend) {
  throw Error(ErrorCode::Unavailable,
              "rank " + std::to_string(rank) + ": backend " + backend +
                  ": this weft was built without CUDA or NCCL (no nvcc, WEFT_WITH_CUDA=OFF, or "
                  "CMake found no nccl.h / libnccl: set NCCL_ROOT); rebuild with them, or use "
                  "backend tcp, shm or mpi with cpu tensors");
}

}  // namespace

int nccl_visible_gpus() { return 0; }

std::unique_ptr<NativeBackend> make_native_nccl_backend(const World& world,
                                                        std::shared_ptr<Store>, int, Deadline) {
  no_nccl(world.rank, "nccl");
}

std::unique_ptr<Transport> make_nccl_transport(const TransportSetup& setup, int) {
  no_nccl(setup.rank, "nccl-ring");
}

}  // namespace weft::comm
