#include "comm/backend_registry.h"

#include <array>

#include "runtime/error.h"

namespace weft::comm {
namespace {

constexpr std::array<BackendInfo, 7> kBackends = {{
    {"auto",
     "shm when every rank is on one node, tcp otherwise; CUDA tensors over nccl when every "
     "local rank has a GPU of its own",
     "", BackendMemory::both},
    {"tcp", "weft's algorithms over TCP sockets",
     "weftrun, MASTER_ADDR/MASTER_PORT or mpirun to meet through", BackendMemory::host},
    {"shm", "weft's algorithms over shared-memory FIFOs in /dev/shm", "every rank on one node",
     BackendMemory::host},
    {"mpi-ring", "weft's algorithms over MPI_Isend/MPI_Irecv", "mpirun, weft built with Open MPI",
     BackendMemory::host},
    {"mpi", "MPI's own collectives (MPI_Iallreduce, ...), fingerprints compared alongside",
     "mpirun, weft built with Open MPI", BackendMemory::host},
    {"nccl-ring", "weft's algorithms over ncclSend/ncclRecv", "CUDA + NCCL, a GPU per rank",
     BackendMemory::both},
    {"nccl", "NCCL's own collectives", "CUDA + NCCL, a GPU per rank; CUDA tensors only",
     BackendMemory::device},
}};

}  // namespace

std::span<const BackendInfo> backends() { return kBackends; }

const BackendInfo& find_backend(std::string_view name, std::string_view flag) {
  for (const BackendInfo& b : kBackends)
    if (name == b.name) return b;
  throw Error(ErrorCode::InvalidArgument, std::string(flag) + ": unknown backend '" +
                                              std::string(name) + "': use one of " +
                                              backend_names());
}

std::string backend_names() {
  std::string names;
  for (const BackendInfo& b : kBackends) names += (names.empty() ? "" : ", ") + std::string(b.name);
  return names;
}

std::string backend_names(BackendMemory memory) {
  std::string names;
  for (const BackendInfo& b : kBackends) {
    if (std::string_view(b.name) == "auto") continue;
    if (b.memory == memory || b.memory == BackendMemory::both)
      names += (names.empty() ? "" : ", ") + std::string(b.name);
  }
  return names;
}

std::string backend_help(std::string_view indent) {
  std::string help;
  for (const BackendInfo& b : kBackends) {
    std::string name = b.name;
    name.resize(10, ' ');
    help += std::string(indent) + name + b.runs;
    if (*b.needs) help += std::string(" (needs ") + b.needs + ")";
    help += "\n";
  }
  return help;
}

}  // namespace weft::comm
