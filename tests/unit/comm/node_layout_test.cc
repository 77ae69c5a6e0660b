// The node layout a hierarchical allreduce works on, as a pure function of the ranks' node keys,
// and this process's node key.
#include "comm/node_layout.h"

#include <gtest/gtest.h>

#include <vector>

namespace weft::comm {
namespace {

using Nodes = std::vector<std::vector<int>>;

TEST(NodeLayout, GroupsRanksByKeyInOrderOfTheirFirstRank) {
  // Keys need not be sorted or contiguous: node-major launchers number ranks so, others may not.
  const std::vector<uint64_t> keys = {70, 70, 9, 70, 9, 5};
  NodeLayout l = node_layout(keys, 4);
  EXPECT_EQ(l.nodes, (Nodes{{0, 1, 3}, {2, 4}, {5}}));
  EXPECT_EQ(l.node, 1);
  EXPECT_EQ(l.local, 1);
  EXPECT_EQ(l.leaders(), (std::vector<int>{0, 2, 5}));
  EXPECT_TRUE(l.hierarchical());
  EXPECT_EQ(node_layout(keys, 0).local, 0);  // a leader
  EXPECT_EQ(node_layout(keys, 5).node, 2);
}

TEST(NodeLayout, HierarchicalOnlyAcrossNodesWithSomeNodeHoldingSeveralRanks) {
  EXPECT_FALSE(node_layout(std::vector<uint64_t>{1, 1, 1, 1}, 0).hierarchical());  // one node
  EXPECT_FALSE(node_layout(std::vector<uint64_t>{1, 2, 3}, 0).hierarchical());     // one rank each
  EXPECT_TRUE(node_layout(std::vector<uint64_t>{1, 1, 2}, 2).hierarchical());      // 2 + 1
  EXPECT_TRUE(node_layout(std::vector<uint64_t>{1, 1, 1, 2, 2}, 3).hierarchical());  // 3 + 2
}

TEST(NodeLayout, NodeKeyFollowsTheLaunchersNodeIndex) {
  World a, b;
  b.node_rank = 1;
  EXPECT_EQ(this_node_key(a), this_node_key(a));  // stable within a process
  EXPECT_NE(this_node_key(a), this_node_key(b));  // two weftruns on one machine: two nodes
}

}  // namespace
}  // namespace weft::comm
