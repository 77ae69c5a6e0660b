#pragma once
// A job across several hosts: one weftrun per node (`--nnodes M --node-rank I`), each starting
// `-n N` ranks, all meeting at one coordinator (`--coordinator HOST:PORT`). Global ranks are
// node-major: node I holds ranks I*N .. I*N+N-1, so the ranks of a tensor-parallel group (which
// the device mesh makes consecutive) share a node. Every node must be given the same -n: the
// world size each computes is then the same, and the coordinator refuses a rank whose world
// size differs from the first one's. Pure: no sockets, no processes.
#include <string>

#include "launcher/launch_options.h"

namespace weft::launcher {

struct NodeLayout {
  int node_rank = 0;
  int num_nodes = 1;
  int local_size = 1;  // ranks on each node (-n)
  int world_size() const { return num_nodes * local_size; }
  int global_rank(int local_rank) const { return node_rank * local_size + local_rank; }
};

NodeLayout node_layout(const LaunchOptions& options);

// The node flags together: a node rank below the node count, and whenever there are several
// nodes a coordinator every node can reach (host:port, the host not 0.0.0.0).
// InvalidArgument saying what to change.
void check_node_layout(const LaunchOptions& options);

inline constexpr int kMaxNodes = 65536;

}  // namespace weft::launcher
