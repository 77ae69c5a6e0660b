#pragma once
// The backends a communicator can run on: the one list that --backend flags, WEFT_BACKEND,
// --help texts and error messages read. What a backend can do at run time is asked of the
// backend object (Transport / NativeBackend::moves_device_memory), never of its name.
#include <span>
#include <string>
#include <string_view>

namespace weft::comm {

// Which tensors a backend moves as they are (the rest are staged through host memory).
enum class BackendMemory { host, device, both };

struct BackendInfo {
  const char* name;   // as --backend and WEFT_BACKEND spell it
  const char* runs;   // what runs, for --help
  const char* needs;  // what it needs, for --help and errors
  BackendMemory memory;
};

// Every backend, "auto" first.
std::span<const BackendInfo> backends();

// The entry called `name`; InvalidArgument naming `flag` and every backend otherwise.
const BackendInfo& find_backend(std::string_view name, std::string_view flag = "--backend");

// "auto, tcp, shm, mpi-ring, mpi, nccl-ring, nccl".
std::string backend_names();
// The names of the backends (auto aside) that move `memory` as it is: "tcp, shm, ...".
std::string backend_names(BackendMemory memory);

// One line per backend (name, what runs, what it needs), each starting with `indent`.
std::string backend_help(std::string_view indent = "  ");

}  // namespace weft::comm
