#include "launcher/node_layout.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/error.h"
#include "tests/unit/launcher/launch_error.h"

namespace weft::launcher {
namespace {

using Args = std::vector<std::string>;

TEST(NodeLayout, GlobalRanksAreNodeMajor) {
  LaunchOptions o = parse_launch_options({"--nnodes", "3", "--node-rank=2", "--coordinator",
                                          "10.0.0.1:29400", "-n", "4", "--", "prog"});
  EXPECT_EQ(o.coordinator, "10.0.0.1:29400");
  NodeLayout layout = node_layout(o);
  EXPECT_EQ(layout.world_size(), 12);
  EXPECT_EQ(layout.local_size, 4);
  EXPECT_EQ(layout.node_rank, 2);
  std::vector<int> ranks;
  for (int local = 0; local < 4; ++local) ranks.push_back(layout.global_rank(local));
  EXPECT_EQ(ranks, (std::vector<int>{8, 9, 10, 11}));
}

TEST(NodeLayout, OneNodeNeedsNoCoordinator) {
  LaunchOptions o = parse_launch_options({"-n", "2", "--", "prog"});
  EXPECT_EQ(o.num_nodes, 1);
  EXPECT_EQ(o.node_rank, 0);
  EXPECT_FALSE(o.coordinator);
  EXPECT_EQ(node_layout(o).global_rank(1), 1);
}

// Across nodes a restart goes on with node 0's ranks alone (elastic_policy.h): --min-ranks may
// be as many as -n, no more (parse_launch_options refuses more).
TEST(NodeLayout, ElasticIsAcceptedAcrossNodes) {
  LaunchOptions o =
      parse_launch_options({"--nnodes", "2", "--node-rank", "1", "--coordinator", "10.0.0.1:29400",
                            "-n", "2", "--elastic", "--min-ranks", "2", "--", "prog"});
  EXPECT_TRUE(o.elastic);
  EXPECT_EQ(o.min_ranks, 2);
}

TEST(NodeLayout, MistakesNameTheFlagAndTheFix) {
  struct Case {
    Args args;
    std::string says;
  };
  for (const Case& c : {
           Case{{"--nnodes", "2", "-n", "2", "--", "p"},
                "--nnodes 2 needs --coordinator HOST:PORT"},
           Case{{"--nnodes", "2", "--node-rank", "2", "--coordinator", "h:1", "-n", "2", "--", "p"},
                "--node-rank 2 is not below --nnodes 2: nodes are numbered 0..1"},
           Case{{"--node-rank", "1", "-n", "2", "--", "p"}, "is not below --nnodes 1"},
           Case{{"--nnodes", "0", "-n", "2", "--", "p"}, "--nnodes must be at least 1, got 0"},
           Case{{"--nnodes", "two", "-n", "2", "--", "p"}, "--nnodes expects a whole number"},
           Case{{"--node-rank", "-1", "-n", "2", "--", "p"}, "--node-rank must be at least 0"},
           Case{{"--nnodes", "2", "--coordinator", "10.0.0.1", "-n", "2", "--", "p"},
                "--coordinator='10.0.0.1' is not host:port"},
           Case{{"--nnodes", "2", "--coordinator", "10.0.0.1:0", "-n", "2", "--", "p"},
                "is not host:port"},
           Case{{"--nnodes", "2", "--coordinator", "0.0.0.0:29400", "-n", "2", "--", "p"},
                "names every interface, which other nodes cannot connect to"},
           Case{{"--nnodes", "2", "--coordinator", "--node-rank", "1", "-n", "2", "--", "p"},
                "--coordinator needs a value"},
           Case{{"--nnode", "2", "-n", "2", "--", "p"}, "did you mean --nnodes?"},
       }) {
    std::string m = error_of(c.args);
    EXPECT_NE(m.find(c.says), std::string::npos) << m;
  }
}

TEST(NodeLayout, HelpNamesTheNodeFlags) {
  std::string usage = usage_text();
  for (const char* flag : {"--nnodes M", "--node-rank I", "--coordinator H:P", "WEFT_TOKEN"})
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace weft::launcher
