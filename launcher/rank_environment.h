#pragma once
// The environment each rank starts with: weftrun's own, with the WEFT_* variables that tell a
// rank who it is (DESIGN.md, "Rank discovery") set or replaced, and the same under torchrun's
// names (RANK, ..., MASTER_ADDR/PORT), so that scripts written for torchrun run unchanged.
// rank_environment is pure; torch_rendezvous_port asks the kernel.
#include <optional>
#include <string>
#include <vector>

namespace weft::launcher {

struct RankEnvironmentInputs {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // on this node (launcher/node_layout.h): rank and world_size on one
  int local_world_size = 1;
  int node_rank = 0;
  std::string job_id;
  std::string token;
  std::string store_addr;              // the coordinator's "host:port"
  int restart_count = 0;               // weftrun --elastic: restarts before this generation
  std::optional<std::string> backend;  // only set when given on the command line, so a
  std::optional<std::string> timeout;  // WEFT_BACKEND/WEFT_TIMEOUT exported by the user survives

  // Where torch.distributed's env:// rendezvous meets (rank 0 listens): MASTER_ADDR/PORT.
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
};

// `base` holds "NAME=value" entries (as in environ). Returns a complete environment.
std::vector<std::string> rank_environment(const std::vector<std::string>& base,
                                          const RankEnvironmentInputs& in);

// A port for MASTER_PORT that nothing of weft's takes: free now, and outside the kernel's
// ephemeral range when one there is free, so that no socket weft binds to port 0 (its
// transports' listeners) nor any outgoing connection can take it before rank 0 listens on it.
int torch_rendezvous_port();

// The calling process's environment as "NAME=value" entries.
std::vector<std::string> current_environment();

}  // namespace weft::launcher
