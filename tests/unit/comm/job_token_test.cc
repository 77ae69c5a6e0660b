// The job token of a torchrun-style job: the per-user secret file (made once, private, refused
// when another user could have made or read it) and the choice between WEFT_TOKEN, that secret,
// WEFT_INSECURE and a usage error.
#include "comm/rendezvous/job_token.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "runtime/error.h"
#include "runtime/socket.h"
#include "tests/support/text.h"

namespace weft::comm {
namespace {

namespace fs = std::filesystem;

using weft::testing::contains;

// Sets environment variables for one test and puts the old values back afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::string>& vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value)
        ::setenv(name.c_str(), value->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

class JobToken : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weft-job-token-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = (root_ / "weft-secret").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string refusal(const std::string& dir) {
    try {
      user_secret(dir);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      return e.what();
    }
    ADD_FAILURE() << "user_secret(" << dir << ") was not refused";
    return "";
  }

  fs::path root_;
  std::string dir_;
};

TEST_F(JobToken, TheSecretIsMadeOncePrivateAndThenReused) {
  std::string secret = user_secret(dir_);
  EXPECT_EQ(secret.size(), 32u);
  EXPECT_EQ(secret.find_first_not_of("0123456789abcdef"), std::string::npos) << secret;
  EXPECT_EQ(user_secret(dir_), secret);
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((dir_ + "/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "a temporary file was left behind";
}

TEST_F(JobToken, RanksMakingTheSecretAtOnceAllGetTheSameOne) {
  std::vector<std::string> got(8);
  std::vector<std::thread> threads;
  for (auto& g : got) threads.emplace_back([&g, this] { g = user_secret(dir_); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, got[0]);
}

TEST_F(JobToken, ADirectoryOthersCanReadIsRefused) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);  // whatever the umask
  std::string why = refusal(dir_);
  EXPECT_TRUE(contains(why, dir_ + " has mode 0755")) << why;
  EXPECT_TRUE(contains(why, "WEFT_TOKEN")) << why;
}

TEST_F(JobToken, ASecretFileOthersCanReadIsRefused) {
  user_secret(dir_);
  ASSERT_EQ(::chmod((dir_ + "/secret").c_str(), 0644), 0);
  std::string why = refusal(dir_);
  EXPECT_TRUE(contains(why, dir_ + "/secret has mode 0644")) << why;
}

TEST_F(JobToken, ASymlinkInPlaceOfTheDirectoryIsNotFollowed) {
  fs::create_directory(root_ / "elsewhere");
  fs::permissions(root_ / "elsewhere", fs::perms::owner_all, fs::perm_options::replace);
  fs::create_directory_symlink(root_ / "elsewhere", dir_);
  std::string why = refusal(dir_);
  EXPECT_TRUE(contains(why, "a symlink or another file is in its place")) << why;
  EXPECT_FALSE(fs::exists(root_ / "elsewhere" / "secret"));
}

TEST_F(JobToken, ADirectoryAnotherUserMadeIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another user";
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);  // nobody
  std::string why = refusal(dir_);
  EXPECT_TRUE(contains(why, "belongs to uid 65534")) << why;
}

TEST_F(JobToken, AnUnreadableSecretSaysToRemoveIt) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  std::ofstream(dir_ + "/secret") << "two words";
  ASSERT_EQ(::chmod((dir_ + "/secret").c_str(), 0600), 0);
  std::string why = refusal(dir_);
  EXPECT_TRUE(contains(why, "is not a token")) << why;
  EXPECT_TRUE(contains(why, "remove it")) << why;
}

TEST(JobTokenBasics, TokensCompareByContent) {
  EXPECT_TRUE(same_token("abc", "abc"));
  EXPECT_FALSE(same_token("abc", "abd"));
  EXPECT_FALSE(same_token("abc", "abcd"));
  EXPECT_FALSE(same_token("", "a"));
  EXPECT_TRUE(same_token("", ""));
}

TEST(JobTokenBasics, LocalAddressesAreThoseThisMachineCanBind) {
  EXPECT_TRUE(is_local_address("127.0.0.1"));
  EXPECT_TRUE(is_local_address("127.0.0.2"));
  EXPECT_TRUE(is_local_address("localhost"));
  EXPECT_TRUE(is_local_address("0.0.0.0"));
  EXPECT_FALSE(is_local_address("198.51.100.7"));  // TEST-NET-2: nobody's address
  EXPECT_FALSE(is_local_address("no-such-host.invalid"));
}

World torchrun_world(const std::string& master_addr, int rank, int local_size) {
  World w;
  w.rank = rank;
  w.size = 2;
  w.local_size = local_size;
  w.launcher = "torchrun";
  w.master_addr = master_addr;
  w.master_port = 29500;
  return w;
}

TEST_F(JobToken, AJobOnThisMachineUsesThePerUserSecretAndListensWhereMasterAddrSays) {
  ScopedEnv env({{"TMPDIR", root_.string()},
                 {"WEFT_TOKEN", ""},
                 {"WEFT_INSECURE", ""},
                 {"WEFT_STORE_BIND", ""}});
  MasterStoreAccess a = master_store_access(torchrun_world("127.0.0.1", 1, 2));
  EXPECT_EQ(a.bind_host, "127.0.0.1");
  EXPECT_EQ(a.secret_path, user_secret_dir() + "/secret");
  EXPECT_EQ(a.token, user_secret(user_secret_dir()));
  EXPECT_EQ(user_secret_dir(), root_.string() + "/weft-" + std::to_string(::geteuid()));
}

// An IPv4 address of this machine other than loopback, or "" when it has none.
std::string non_loopback_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i && found.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    if (std::string(buf).rfind("127.", 0) != 0) found = buf;
  }
  ::freeifaddrs(list);
  return found;
}

TEST_F(JobToken, AnInterfaceAddressOfThisMachineIsOneMachineToo) {
  const std::string addr = non_loopback_address();
  if (addr.empty()) GTEST_SKIP() << "this machine has no IPv4 address but loopback";
  ScopedEnv env({{"TMPDIR", root_.string()},
                 {"WEFT_TOKEN", ""},
                 {"WEFT_INSECURE", ""},
                 {"WEFT_STORE_BIND", ""}});
  MasterStoreAccess a = master_store_access(torchrun_world(addr, 0, 2));
  EXPECT_EQ(a.bind_host, addr);  // where MASTER_ADDR says, not every interface
  EXPECT_EQ(a.token, user_secret(user_secret_dir()));
}

TEST_F(JobToken, WeftTokenWinsAndWeftStoreBindOverridesTheAddress) {
  ScopedEnv env({{"TMPDIR", root_.string()},
                 {"WEFT_TOKEN", "given"},
                 {"WEFT_INSECURE", ""},
                 {"WEFT_STORE_BIND", "0.0.0.0"}});
  for (int local_size : {1, 2}) {
    MasterStoreAccess a = master_store_access(torchrun_world("198.51.100.7", 0, local_size));
    EXPECT_EQ(a.token, "given");
    EXPECT_EQ(a.secret_path, "");
    EXPECT_EQ(a.bind_host, "0.0.0.0");
  }
  EXPECT_FALSE(fs::exists(user_secret_dir())) << "no secret is made when WEFT_TOKEN is given";
}

TEST_F(JobToken, AJobAcrossMachinesWithoutWeftTokenIsAUsageError) {
  ScopedEnv env({{"TMPDIR", root_.string()},
                 {"WEFT_TOKEN", ""},
                 {"WEFT_INSECURE", ""},
                 {"WEFT_STORE_BIND", ""}});
  for (auto [addr, local_size, says] :
       {std::tuple{"198.51.100.7", 2, "MASTER_ADDR=198.51.100.7 is not an address of this machine"},
        std::tuple{"127.0.0.1", 1, "WORLD_SIZE=2 but LOCAL_WORLD_SIZE=1"}}) {
    try {
      master_store_access(torchrun_world(addr, 1, local_size));
      ADD_FAILURE() << addr << " was accepted without a token";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      std::string why = e.what();
      EXPECT_TRUE(contains(why, "rank 1: this job spans machines")) << why;
      EXPECT_TRUE(contains(why, says)) << why;
      EXPECT_TRUE(contains(why, "export WEFT_TOKEN=$(openssl rand -hex 16)")) << why;
      EXPECT_TRUE(contains(why, "WEFT_INSECURE=1")) << why;
    }
  }
}

// srun alone across nodes: the message speaks Slurm's names, not variables the user never set.
TEST_F(JobToken, AnSrunStepAcrossNodesWithoutWeftTokenSaysSoInSlurmsTerms) {
  ScopedEnv env({{"TMPDIR", root_.string()},
                 {"WEFT_TOKEN", ""},
                 {"WEFT_INSECURE", ""},
                 {"WEFT_STORE_BIND", ""}});
  World w = torchrun_world("198.51.100.7", 1, 2);
  w.launcher = "slurm";
  w.master_from_slurm = true;
  for (auto [addr, says] :
       {std::pair{"198.51.100.7",
                  "rank 0's host 198.51.100.7 (the first of SLURM_STEP_NODELIST) is not an "
                  "address of this machine"},
        std::pair{"127.0.0.1", "SLURM_NTASKS=2 but 1 on this node"}}) {
    w.master_addr = addr;
    w.local_size = std::string(addr) == "127.0.0.1" ? 1 : 2;
    try {
      master_store_access(w);
      ADD_FAILURE() << addr << " was accepted without a token";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), says)) << e.what();
      EXPECT_TRUE(contains(e.what(), "export WEFT_TOKEN=$(openssl rand -hex 16)")) << e.what();
    }
  }
}

TEST_F(JobToken, WeftInsecureRunsAJobAcrossMachinesWithoutAToken) {
  ScopedEnv env({{"TMPDIR", root_.string()},
                 {"WEFT_TOKEN", ""},
                 {"WEFT_INSECURE", "1"},
                 {"WEFT_STORE_BIND", ""}});
  MasterStoreAccess a = master_store_access(torchrun_world("198.51.100.7", 1, 2));
  EXPECT_EQ(a.token, "");
  EXPECT_EQ(a.bind_host, "198.51.100.7");
}

// weftrun --coordinator and weft-coordinator --bind: the same rule by the coordinator's address.
TEST_F(JobToken, ACoordinatorOtherMachinesReachNeedsWeftTokenOrWeftInsecure) {
  {
    ScopedEnv env({{"TMPDIR", root_.string()}, {"WEFT_TOKEN", ""}, {"WEFT_INSECURE", ""}});
    EXPECT_EQ(coordinator_token("127.0.0.1", "--coordinator 127.0.0.1:1"),
              user_secret(user_secret_dir()));
    EXPECT_EQ(coordinator_token("localhost", "--coordinator localhost:1"),
              user_secret(user_secret_dir()));
    try {
      coordinator_token("198.51.100.7", "--coordinator 198.51.100.7:29400");
      ADD_FAILURE() << "a coordinator other machines reach was given no token";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      std::string why = e.what();
      EXPECT_TRUE(contains(why, "--coordinator 198.51.100.7:29400 lets other machines")) << why;
      EXPECT_TRUE(contains(why, "export WEFT_TOKEN=$(openssl rand -hex 16)")) << why;
    }
  }
  {
    ScopedEnv env({{"TMPDIR", root_.string()}, {"WEFT_TOKEN", "given"}, {"WEFT_INSECURE", ""}});
    EXPECT_EQ(coordinator_token("198.51.100.7", "x"), "given");
  }
  ScopedEnv env({{"TMPDIR", root_.string()}, {"WEFT_TOKEN", ""}, {"WEFT_INSECURE", "1"}});
  EXPECT_EQ(coordinator_token("198.51.100.7", "x"), "");
}

}  // namespace
}  // namespace weft::comm
