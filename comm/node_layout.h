#pragma once
// Which ranks of a group share a node: the layout a collective across nodes works on
// (comm/hierarchy.h). Every rank finds its own node key (this_node_key); the group gathers them
// (Communicator's set-up) and every rank derives the same layout from the same keys
// (node_layout, a pure function), so all agree on it without another exchange.
#include <cstdint>
#include <span>
#include <vector>

#include "runtime/world.h"

namespace weft::comm {

// What identifies this rank's node: the node index its launcher gave it (weftrun --node-rank,
// torchrun's GROUP_RANK, SLURM_NODEID; two weftruns on one machine are two nodes), and what the
// kernel says about sharing memory: host name, boot id, the /dev/shm mount and the pid namespace.
// Ranks with equal keys can map each other's shared memory and see each other's processes (the
// shm transport's needs), and their launcher put them on one node.
uint64_t this_node_key(const World& w);

struct NodeLayout {
  std::vector<std::vector<int>> nodes;  // each node's ranks in rank order; nodes by first rank
  int node = 0;                         // this rank's node
  int local = 0;                        // this rank's place in it (0: the node's leader)

  // Each node's leader (its first rank), in node order.
  std::vector<int> leaders() const;
  // Whether reducing inside each node first saves network traffic: the group spans several
  // nodes and some node holds several of its ranks.
  bool hierarchical() const;
};

// The layout of a group whose rank r has node key keys[r], seen from `rank`.
NodeLayout node_layout(std::span<const uint64_t> keys, int rank);

}  // namespace weft::comm
