#include "launcher/rank_environment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace weft::launcher {
namespace {

std::map<std::string, std::string> as_map(const std::vector<std::string>& env) {
  std::map<std::string, std::string> m;
  for (const std::string& e : env) {
    size_t eq = e.find('=');
    EXPECT_TRUE(m.emplace(e.substr(0, eq), e.substr(eq + 1)).second) << "duplicate " << e;
  }
  return m;
}

TEST(RankEnvironment, SetsEveryWeftrunVariableAndKeepsTheRest) {
  RankEnvironmentInputs in;
  in.rank = 6;
  in.world_size = 8;
  in.local_rank = 2;
  in.local_world_size = 4;
  in.node_rank = 1;
  in.job_id = "j1abc";
  in.token = "beef";
  in.store_addr = "127.0.0.1:5555";
  auto env = as_map(rank_environment(
      {"PATH=/bin", "WEFT_RANK=9", "HOME=/root", "WEFT_BACKEND=shm", "EMPTY="}, in));
  EXPECT_EQ(env["PATH"], "/bin");
  EXPECT_EQ(env["HOME"], "/root");
  EXPECT_EQ(env["EMPTY"], "");
  EXPECT_EQ(env["WEFT_RANK"], "6");  // a stale inherited value is replaced
  EXPECT_EQ(env["WEFT_WORLD_SIZE"], "8");
  EXPECT_EQ(env["WEFT_LOCAL_RANK"], "2");
  EXPECT_EQ(env["WEFT_LOCAL_WORLD_SIZE"], "4");
  EXPECT_EQ(env["WEFT_NODE_RANK"], "1");
  EXPECT_EQ(env["WEFT_JOB_ID"], "j1abc");
  EXPECT_EQ(env["WEFT_TOKEN"], "beef");
  EXPECT_EQ(env["WEFT_STORE_ADDR"], "127.0.0.1:5555");
  EXPECT_EQ(env["WEFT_BACKEND"], "shm");  // not given on the command line: the user's stays
  EXPECT_EQ(env.count("WEFT_TIMEOUT"), 0u);
}

TEST(RankEnvironment, CommandLineBackendAndTimeoutOverrideTheUsers) {
  RankEnvironmentInputs in;
  in.backend = "tcp";
  in.timeout = "7.5";
  auto env = as_map(rank_environment({"WEFT_BACKEND=shm", "WEFT_TIMEOUT=300"}, in));
  EXPECT_EQ(env["WEFT_BACKEND"], "tcp");
  EXPECT_EQ(env["WEFT_TIMEOUT"], "7.5");
}

}  // namespace
}  // namespace weft::launcher
