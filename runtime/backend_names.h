#pragma once
// The collective backends a rank accepts (--backend / WEFT_BACKEND), in one list that flags,
// --help and error messages read. A stand-in until the backend registry holds each backend with
// its capabilities.
#include <array>
#include <string>
#include <string_view>

namespace weft {

inline constexpr std::array<std::string_view, 7> backend_names() {
  return {"auto", "tcp", "shm", "mpi-ring", "mpi", "nccl-ring", "nccl"};
}

bool is_backend_name(std::string_view name);
// "auto, tcp, shm, mpi-ring, mpi, nccl-ring or nccl": for messages and help texts.
std::string backend_names_text();

}  // namespace weft
