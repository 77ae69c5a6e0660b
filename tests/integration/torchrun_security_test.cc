// Ranks started with torchrun-style variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and
// no weftrun: another user's process cannot join, a job across machines needs WEFT_TOKEN, and
// nothing listens on a wildcard address. Real processes, real sockets, a real second uid; every
// process has a hard timeout in the harness, whose destructor kills what is left.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/weftrun_harness.h"

namespace weft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Env = std::vector<std::string>;

const std::string kRank = WEFTRUN_RANK_HELPER_PATH;

// A port whose successor (the store's port) was free a moment ago.
int free_master_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(a.sin_port) - 1;
}

// "ip:port" of every TCP socket `pid` listens on, read from /proc (IPv4 and IPv6).
std::vector<std::string> listening_addresses(pid_t pid) {
  std::vector<std::string> inodes;
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string target = fs::read_symlink(fd.path(), ec).string();
    if (target.rfind("socket:[", 0) == 0) inodes.push_back(target.substr(8, target.size() - 9));
  }
  std::vector<std::string> found;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      if (state != "0A") continue;  // TCP_LISTEN
      if (std::find(inodes.begin(), inodes.end(), inode) == inodes.end()) continue;
      size_t colon = local.find(':');
      int port = std::stoi(local.substr(colon + 1), nullptr, 16);
      std::string hex = local.substr(0, colon);
      std::string ip;
      // An IPv4 address mapped into IPv6 (::ffff:a.b.c.d, how gRPC binds an IPv4 address) is
      // that IPv4 address: only it is reached.
      const std::string v4_mapped = "0000000000000000FFFF0000";
      if (hex.size() == 32 && hex.rfind(v4_mapped, 0) == 0) hex = hex.substr(v4_mapped.size());
      if (hex.size() == 8) {
        in_addr addr{static_cast<in_addr_t>(std::stoul(hex, nullptr, 16))};  // host order = as read
        ip = inet_ntoa(addr);
      } else {
        ip = hex == std::string(32, '0') ? "::" : "[" + hex + "]";
      }
      found.push_back(ip + ":" + std::to_string(port));
    }
  }
  return found;
}

// Waits until `pid` listens on at least `n` sockets; returns them.
std::vector<std::string> await_listeners(pid_t pid, size_t n, std::chrono::milliseconds timeout) {
  auto give_up = std::chrono::steady_clock::now() + timeout;
  std::vector<std::string> found;
  while ((found = listening_addresses(pid)).size() < n &&
         std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(20ms);
  return found;
}

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

// A private TMPDIR for the ranks' per-user secret; removed afterwards.
class TorchrunLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weft-torchrun-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmpdir_ = tmpl;
    port_ = free_master_port();
  }
  void TearDown() override {
    fs::remove_all(tmpdir_);
    if (!stranger_tmpdir_.empty()) fs::remove_all(stranger_tmpdir_);
  }

  // The variables torchrun gives rank `rank` of 2 (both on this node unless `local_size` says
  // otherwise), with none of weft's own security variables inherited from the test's.
  Env rank_env(int rank, const std::string& master_addr = "127.0.0.1", int local_size = 2,
               Env extra = {}) const {
    int local_rank = local_size == 2 ? rank : 0;
    Env env = {"RANK=" + std::to_string(rank),
               "WORLD_SIZE=2",
               "LOCAL_RANK=" + std::to_string(local_rank),
               "LOCAL_WORLD_SIZE=" + std::to_string(local_size),
               "GROUP_RANK=" + std::to_string(local_size == 2 ? 0 : rank),
               "MASTER_ADDR=" + master_addr,
               "MASTER_PORT=" + std::to_string(port_),
               "TMPDIR=" + tmpdir_.string(),
               "WEFT_BACKEND=tcp",
               "WEFT_TIMEOUT=60",
               "WEFT_LOG=warn",
               "WEFT_TOKEN=",
               "WEFT_INSECURE=",
               "WEFT_STORE_BIND=",
               "WEFT_STORE_ADDR="};
    env.insert(env.begin(), extra.begin(), extra.end());  // first wins
    return env;
  }
  std::unique_ptr<WeftrunProcess> start_rank(const Env& env) const {
    return std::make_unique<WeftrunProcess>(Program{kRank}, Env{"allreduce"}, "", env);
  }

  fs::path tmpdir_;
  fs::path stranger_tmpdir_;  // another user's TMPDIR, when a test has one
  int port_ = 0;
};

std::string setpriv_path() {
  for (const char* p : {"/usr/bin/setpriv", "/bin/setpriv"})
    if (::access(p, X_OK) == 0) return p;
  return "";
}

TEST_F(TorchrunLaunch, AnotherUsersProcessPosingAsRank1IsRefusedAndTheRealRanksMeet) {
  const std::string setpriv = setpriv_path();
  if (::geteuid() != 0 || setpriv.empty())
    GTEST_SKIP() << "needs root and setpriv to run a process as another user (nobody)";
  // The stranger's own TMPDIR, where it (as nobody) makes its own per-user secret.
  char tmpl[] = "/tmp/weft-torchrun-stranger-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  stranger_tmpdir_ = tmpl;
  fs::permissions(stranger_tmpdir_, fs::perms::all | fs::perms::sticky_bit);

  auto rank0 = start_rank(rank_env(0));
  std::vector<std::string> up = await_listeners(rank0->pid(), 1, 20s);
  ASSERT_FALSE(up.empty()) << "rank 0 never served its store";

  // Another user's process, started the same way, claims rank 1 before the real one comes.
  Env stranger_env =
      rank_env(1, "127.0.0.1", 2, {"TMPDIR=" + stranger_tmpdir_.string(), "WEFT_TIMEOUT=10"});
  WeftrunResult stranger =
      WeftrunProcess(Program{setpriv},
                     {"--reuid=nobody", "--regid=nogroup", "--clear-groups", kRank, "allreduce"},
                     "", stranger_env)
          .finish(40s);
  EXPECT_FALSE(stranger.timed_out);
  EXPECT_NE(stranger.exit_code, 0) << stranger.out << stranger.err;
  EXPECT_FALSE(contains(stranger.out, "allreduce")) << "the stranger took part: " << stranger.out;
  EXPECT_TRUE(contains(stranger.err, "refused this rank")) << stranger.err;

  // The real rank 1 still finds its place, and the sums are right.
  auto rank1 = start_rank(rank_env(1));
  WeftrunResult r1 = rank1->finish(90s);
  WeftrunResult r0 = rank0->finish(90s);
  EXPECT_EQ(r0.exit_code, 0) << r0.out << r0.err;
  EXPECT_EQ(r1.exit_code, 0) << r1.out << r1.err;
  EXPECT_TRUE(contains(r0.out, "rank 0 allreduce 3 over tcp")) << r0.out << r0.err;
  EXPECT_TRUE(contains(r1.out, "rank 1 allreduce 3 over tcp")) << r1.out << r1.err;
  // Rank 0 says who it turned away, with the address.
  EXPECT_TRUE(contains(r0.err, "coordinator refused a request from ipv4:127.0.0.1:")) << r0.err;
  EXPECT_TRUE(contains(r0.err, "wrong job token")) << r0.err;
}

TEST_F(TorchrunLaunch, AJobAcrossMachinesWithoutWeftTokenStopsEveryRankWithExit2) {
  // 198.51.100.7 (TEST-NET-2) is never an address of this machine; a loopback MASTER_ADDR with
  // LOCAL_WORLD_SIZE=1 says the other rank runs on another node.
  for (auto [addr, local_size] : {std::pair{"198.51.100.7", 2}, std::pair{"127.0.0.1", 1}}) {
    SCOPED_TRACE(std::string("MASTER_ADDR=") + addr +
                 " LOCAL_WORLD_SIZE=" + std::to_string(local_size));
    auto rank0 = start_rank(rank_env(0, addr, local_size));
    auto rank1 = start_rank(rank_env(1, addr, local_size));
    for (WeftrunResult r : {rank0->finish(20s), rank1->finish(20s)}) {
      EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
      EXPECT_LT(r.seconds, 10.0);  // at once, not after a rendezvous timeout
      EXPECT_TRUE(contains(r.err, "WEFT_TOKEN is not set")) << r.err;
      EXPECT_TRUE(contains(r.err, "export WEFT_TOKEN=$(openssl rand -hex 16)")) << r.err;
      EXPECT_TRUE(contains(r.err, "WEFT_INSECURE=1")) << r.err;
    }
  }
}

TEST_F(TorchrunLaunch, WeftInsecureRunsAJobAcrossMachinesWithAWarningOnEveryRank) {
  auto rank0 = start_rank(rank_env(0, "127.0.0.1", 1, {"WEFT_INSECURE=1"}));
  auto rank1 = start_rank(rank_env(1, "127.0.0.1", 1, {"WEFT_INSECURE=1"}));
  int rank = 0;
  for (WeftrunResult r : {rank0->finish(90s), rank1->finish(90s)}) {
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "rank " + std::to_string(rank++) + " allreduce 3")) << r.out;
    EXPECT_TRUE(contains(r.err, "warn] WEFT_INSECURE=1: this job spans machines")) << r.err;
  }
}

TEST_F(TorchrunLaunch, WeftTokenAcrossMachinesRunsAndIsNeverPrinted) {
  const std::string token = "5ecret70ken0f7h15j0b";
  Env extra = {"WEFT_TOKEN=" + token, "WEFT_LOG=debug"};
  auto rank0 = start_rank(rank_env(0, "127.0.0.1", 1, extra));
  auto rank1 = start_rank(rank_env(1, "127.0.0.1", 1, extra));
  for (WeftrunResult r : {rank0->finish(90s), rank1->finish(90s)}) {
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_FALSE(contains(r.out + r.err, token)) << r.out << r.err;
  }
}

TEST_F(TorchrunLaunch, NothingListensOnAWildcardAddressDuringALoopbackJob) {
  auto rank0 = start_rank(rank_env(0));
  // Rank 0 serves the store, then listens for rank 1's tcp connection and waits for it.
  std::vector<std::string> listeners = await_listeners(rank0->pid(), 2, 20s);
  ASSERT_EQ(listeners.size(), 2u) << "expected the store and the tcp transport: "
                                  << joined(listeners);
  for (const std::string& a : listeners) EXPECT_EQ(a.rfind("127.0.0.1:", 0), 0u) << a;
  EXPECT_TRUE(contains(joined(listeners), "127.0.0.1:" + std::to_string(port_ + 1)))
      << joined(listeners);
  auto rank1 = start_rank(rank_env(1));
  EXPECT_EQ(rank1->finish(90s).exit_code, 0);
  EXPECT_EQ(rank0->finish(90s).exit_code, 0);
}

TEST(WeftrunStore, ListensOnLoopbackOnly) {
  WeftrunProcess weftrun({"-n", "1", "--", "sh", "-c", "echo up; sleep 30"});
  ASSERT_TRUE(weftrun.wait_for_stdout("up", 1, 20s));
  std::vector<std::string> listeners = listening_addresses(weftrun.pid());
  EXPECT_EQ(listeners.size(), 1u) << joined(listeners);
  for (const std::string& a : listeners) EXPECT_EQ(a.rfind("127.0.0.1:", 0), 0u) << a;
  weftrun.send_signal(SIGTERM);
  weftrun.finish(20s);
}

}  // namespace
}  // namespace weft::testing
