#include "runtime/slurm_step.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace weft::slurm {
namespace {

using Hosts = std::vector<std::string>;

Hosts expand(const std::string& list) { return expand_nodelist(list, "SLURM_STEP_NODELIST"); }

std::string error_of(const std::string& list) {
  try {
    expand(list);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << list << " was accepted";
  return "";
}

TEST(SlurmNodelist, ExpandsRangesListsAndPadding) {
  EXPECT_EQ(expand("node01"), (Hosts{"node01"}));
  EXPECT_EQ(expand("localhost"), (Hosts{"localhost"}));
  EXPECT_EQ(expand("node[01-04,07]"), (Hosts{"node01", "node02", "node03", "node04", "node07"}));
  EXPECT_EQ(expand("a[8-11]"), (Hosts{"a8", "a9", "a10", "a11"}));
  EXPECT_EQ(expand("n[098-101]"), (Hosts{"n098", "n099", "n100", "n101"}));
  EXPECT_EQ(expand("node[1-2],gpu3,x[5]"), (Hosts{"node1", "node2", "gpu3", "x5"}));
  EXPECT_EQ(expand("r[1-2]n[1-2]"), (Hosts{"r1n1", "r1n2", "r2n1", "r2n2"}));
  EXPECT_EQ(expand("rack[1-2]-node[01,03].cluster"),
            (Hosts{"rack1-node01.cluster", "rack1-node03.cluster", "rack2-node01.cluster",
                   "rack2-node03.cluster"}));
}

TEST(SlurmNodelist, MalformedListsNameTheVariableAndTheProblem) {
  for (auto [list, says] : std::vector<std::pair<std::string, std::string>>{
           {"", "an empty host name"},
           {"a,,b", "an empty host name"},
           {"node[01-04", "a '[' without ']'"},
           {"node01]", "unbalanced brackets"},
           {"node[[1]]", "unbalanced brackets"},
           {"node[]", "not a number or a range"},
           {"node[a-b]", "not a number or a range"},
           {"node[1,]", "not a number or a range"},
           {"node[4-1]", "the range '4-1' is empty or too long"},
           {"n[1-999999999]", "too long"}}) {
    std::string m = error_of(list);
    EXPECT_NE(m.find("SLURM_STEP_NODELIST='" + list + "' is not a Slurm host list"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find(says), std::string::npos) << m;
  }
}

TEST(SlurmTasksPerNode, CountsRepeatsAndLists) {
  EXPECT_EQ(tasks_on_node("4", 0, "V"), 4);
  EXPECT_EQ(tasks_on_node("2(x3),1", 0, "V"), 2);
  EXPECT_EQ(tasks_on_node("2(x3),1", 2, "V"), 2);
  EXPECT_EQ(tasks_on_node("2(x3),1", 3, "V"), 1);
  EXPECT_EQ(tasks_on_node("1,5,2(x2)", 1, "V"), 5);
  for (auto [text, node, says] : std::vector<std::tuple<std::string, int, std::string>>{
           {"2(x3),1", 4, "lists 4 nodes, not node 4"},
           {"2(x3", 0, "without its ')'"},
           {"x", 0, "not a count of tasks"},
           {"", 0, "not a count of tasks"}}) {
    try {
      tasks_on_node(text, node, "SLURM_STEP_TASKS_PER_NODE");
      ADD_FAILURE() << text << " was accepted";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("SLURM_STEP_TASKS_PER_NODE='" + text + "'"), std::string::npos) << m;
      EXPECT_NE(m.find(says), std::string::npos) << m;
    }
  }
}

TEST(SlurmStepPort, SameForEveryRankOfAStepAndDifferentAcrossStepsAndJobs) {
  EXPECT_EQ(step_port("123", "0"), step_port("123", "0"));
  std::set<int> ports;
  for (int job = 1000; job < 1010; ++job)
    for (int step = 0; step < 4; ++step) {
      int port = step_port(std::to_string(job), std::to_string(step));
      EXPECT_GE(port, 15000);
      EXPECT_LE(port, 30999);  // the coordinator's port + 1 stays below the ephemeral range
      ports.insert(port);
    }
  EXPECT_EQ(ports.size(), 40u);
  EXPECT_EQ(step_port("", "batch"), 15000);  // not numbers: still a port, the same everywhere
}

}  // namespace
}  // namespace weft::slurm
