#include "launcher/rank_environment.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "runtime/unique_fd.h"
#include "runtime/world.h"

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

TEST(RankEnvironment, TorchrunNamesCarryTheSameValuesAndReplaceStaleOnes) {
  RankEnvironmentInputs in;  // rank 4 of 6, the second of 3 on node 1
  in.rank = 4;
  in.world_size = 6;
  in.local_rank = 1;
  in.local_world_size = 3;
  in.node_rank = 1;
  in.master_port = 23456;
  auto env = as_map(rank_environment({"RANK=7", "WORLD_SIZE=9", "MASTER_PORT=29500"}, in));
  EXPECT_EQ(env["RANK"], "4");
  EXPECT_EQ(env["WORLD_SIZE"], "6");
  EXPECT_EQ(env["LOCAL_RANK"], "1");
  EXPECT_EQ(env["LOCAL_WORLD_SIZE"], "3");
  EXPECT_EQ(env["GROUP_RANK"], "1");
  EXPECT_EQ(env["MASTER_ADDR"], "127.0.0.1");
  EXPECT_EQ(env["MASTER_PORT"], "23456");
}

TEST(RankEnvironment, WeftReadsItsOwnVariablesFirst) {
  // A rank sees both sets; weft must go by WEFT_* and its own store, never MASTER_ADDR/PORT
  // (torch.distributed's TCPStore listens there).
  RankEnvironmentInputs in;
  in.rank = 1;
  in.world_size = 2;
  in.store_addr = "127.0.0.1:5555";
  in.master_port = 23456;
  auto env = as_map(rank_environment({}, in));
  World w = World::from_vars([&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
  EXPECT_EQ(w.launcher, "weftrun");
  EXPECT_EQ(w.rank, 1);
  EXPECT_EQ(w.size, 2);
  EXPECT_EQ(w.master_addr, "");
  EXPECT_EQ(w.master_port, 0);
}

TEST(RankEnvironment, TorchRendezvousPortIsFreeAndOutsideTheEphemeralRange) {
  int ephemeral_low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  int port = torch_rendezvous_port();
  EXPECT_GE(port, 1024);
  EXPECT_LT(port, ephemeral_low);
  // Free: a listener can take it (what rank 0's TCPStore does).
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << port;
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
