// A job across two hosts, for real: two network namespaces joined by a veth pair stand for two
// machines (each sees only its own address and the other's, over the pair), with one
// `weftrun --nnodes 2` in each. Nothing of the job can take a shortcut through loopback: a rank
// listening on 127.0.0.1 or on the wrong address would never be reached. All traffic stays inside
// the namespaces, which the test removes however it ends (and those a killed run left behind, at
// the next start). Needs root and iproute2; skips saying so otherwise. Both namespaces share this
// machine's file system, as the nodes of a cluster share --ckpt-dir's: under --elastic the
// survivors resume from shards the lost host wrote.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/elastic_harness.h"

namespace weft::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kAddressA[] = "10.77.0.1";
constexpr char kAddressB[] = "10.77.0.2";
constexpr char kPrefix[] = "weftmn";  // namespaces and links of this test: weftmn<pid><a|b>

std::string find_ip() {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    std::string path = std::string(dir) + "/ip";
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

// Runs a shell command quietly; true when it exits 0.
bool sh(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

// Namespaces whose creating test process is gone (a run killed by ctest's timeout).
void remove_stale_namespaces(const std::string& ip) {
  FILE* list = ::popen((ip + " netns list 2>/dev/null").c_str(), "r");
  if (!list) return;
  std::vector<std::string> stale;
  char line[256];
  std::regex ours(std::string("^") + kPrefix + R"((\d+)[ab]\b)");
  while (std::fgets(line, sizeof line, list)) {
    std::cmatch m;
    if (std::regex_search(line, m, ours) && ::kill(std::stoi(m[1]), 0) != 0) stale.push_back(m[0]);
  }
  ::pclose(list);
  for (const std::string& ns : stale) sh(ip + " netns del " + ns);
}

// Two namespaces, "a" (10.77.0.1) and "b" (10.77.0.2), joined by a veth pair; removed when this
// goes (the veth pair goes with them).
class TwoHosts {
 public:
  explicit TwoHosts(const std::string& ip) : ip_(ip) {
    const std::string id = kPrefix + std::to_string(::getpid());
    a_ = id + "a";
    b_ = id + "b";
    for (const std::string& step :
         {"netns add " + a_, "netns add " + b_, "link add " + a_ + " type veth peer name " + b_,
          "link set " + a_ + " netns " + a_, "link set " + b_ + " netns " + b_,
          "-n " + a_ + " addr add " + kAddressA + "/24 dev " + a_,
          "-n " + b_ + " addr add " + kAddressB + "/24 dev " + b_, "-n " + a_ + " link set lo up",
          "-n " + b_ + " link set lo up", "-n " + a_ + " link set " + a_ + " up",
          "-n " + b_ + " link set " + b_ + " up"}) {
      if (!sh(ip_ + " " + step)) {
        failed_ = "ip " + step;
        return;
      }
    }
  }
  ~TwoHosts() {
    sh(ip_ + " netns del " + a_);
    sh(ip_ + " netns del " + b_);
  }
  // The set-up command that failed, or "".
  const std::string& failed() const { return failed_; }

  // `weftrun args...` on host a (0) or b (1).
  std::unique_ptr<WeftrunProcess> weftrun(int host, const Args& args, const Args& env) const {
    Args all = {"netns", "exec", host == 0 ? a_ : b_, WEFTRUN_PATH};
    all.insert(all.end(), args.begin(), args.end());
    return std::make_unique<WeftrunProcess>(Program{ip_}, all, "", env);
  }
  // Takes host b's end of the pair down: b is cut off, its processes live on.
  bool cut_off_b() const { return sh(ip_ + " -n " + b_ + " link set " + b_ + " down"); }

 private:
  std::string ip_, a_, b_;
  std::string failed_;
};

// weftrun's flags for node `node` of 2 with 2 ranks each, meeting at host a.
Args node_flags(int node) {
  return {"--nnodes",
          "2",
          "--node-rank",
          std::to_string(node),
          "--coordinator",
          std::string(kAddressA) + ":29400",
          "-n",
          "2",
          "--backend",
          "tcp"};
}

// What a two-host elastic run came to, for each test's checks of its own fault.
struct ElasticRun {
  WeftrunResult a, b;
  double named_s = 0, restarted_s = 0, resumed_s = 0;  // from the fault
  int from = -1;  // the step the second generation continued after
};

class TwoHostJob : public ElasticTrain {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to make network namespaces";
    ip_ = find_ip();
    if (ip_.empty()) GTEST_SKIP() << "needs iproute2's ip to make network namespaces";
    remove_stale_namespaces(ip_);
    hosts_ = std::make_unique<TwoHosts>(ip_);
    if (!hosts_->failed().empty())
      GTEST_SKIP() << "cannot make two network namespaces joined by a veth pair: `"
                   << hosts_->failed() << "` failed";
    ElasticTrain::SetUp();
  }
  void TearDown() override {
    hosts_.reset();
    if (fs::exists(dir_)) ElasticTrain::TearDown();
  }

  // weftrun --elastic on both hosts, `fault` striking host b mid-run (defined below).
  void run_elastic(const std::function<bool(WeftrunProcess&)>& fault, ElasticRun& run);

  // The job's token, the same on both hosts, as a user exports it on every node.
  const Args env_ = {"WEFT_TOKEN=" + std::string("5eb3c7f0a1d24e6b9c8d7e6f5a4b3c2d"),
                     "WEFT_INSECURE="};
  std::string ip_;
  std::unique_ptr<TwoHosts> hosts_;
};

// The same global batch and seed on 2 hosts x 2 ranks as on 4 ranks of one host: the same
// loss at every step (only the order of the gradient sums may differ).
TEST_F(TwoHostJob, TrainsTheLossesOfFourRanksOnOneHost) {
  const Args model = {"--layers", "2", "--d-model",     "64",  "--heads", "4", "--seq", "32",
                      "--batch",  "8", "--micro-batch", "2",   "--steps", "8", "--lr",  "3e-3",
                      "--warmup", "2", "--bucket-mb",   "0.05"};
  Args flags = model;
  flags.insert(flags.end(), {"--log-json", (dir_ / "one_host.json").string()});
  WeftrunResult one = train(4, flags, {}, {"--backend", "tcp"});
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;

  std::vector<std::unique_ptr<WeftrunProcess>> nodes;
  for (int node : {1, 0}) {  // node 1 first: it waits for node 0's coordinator
    Args args = node_flags(node);
    args.insert(args.end(), {"--", WEFT_TRAIN_PATH});
    args.insert(args.end(), model.begin(), model.end());
    args.insert(args.end(),
                {"--log-json", (dir_ / ("two_hosts_" + std::to_string(node) + ".json")).string()});
    nodes.push_back(hosts_->weftrun(node, args, env_));
  }
  WeftrunResult b = nodes[0]->finish(120s);
  WeftrunResult a = nodes[1]->finish(30s);
  ASSERT_EQ(a.exit_code, 0) << "host a:\n" << a.out << a.err << "host b:\n" << b.out << b.err;
  ASSERT_EQ(b.exit_code, 0) << "host b:\n" << b.out << b.err;
  // Rank 0, on host a, logs; host b's ranks are 2 and 3.
  EXPECT_TRUE(contains(first_line(a.out), "| 4 ranks over tcp |")) << a.out;
  EXPECT_EQ(b.out, "") << "rank 0, which prints, is on host a";

  std::vector<double> reference = losses("one_host.json");
  std::vector<double> across = losses("two_hosts_0.json");
  ASSERT_EQ(reference.size(), 8u);
  ASSERT_EQ(across.size(), reference.size());
  EXPECT_LT(reference.back(), reference.front());  // it trains at all
  for (size_t step = 0; step < reference.size(); ++step)
    EXPECT_NEAR(across[step], reference[step], 1e-5 * std::fabs(reference[step]))
        << "step " << step + 1;
}

// Issue 11's rule across machines: a coordinator other machines reach needs WEFT_TOKEN (or
// WEFT_INSECURE=1), and weftrun says so before it starts anything.
TEST(MultiNode, ANodeWithoutWeftTokenIsAUsageError) {
  WeftrunResult r = run_weftrun({"--nnodes", "2", "--node-rank", "1", "--coordinator",
                                 "198.51.100.7:29400", "-n", "2", "--", "true"},
                                "", {"WEFT_TOKEN=", "WEFT_INSECURE="});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "--coordinator 198.51.100.7:29400 lets other machines reach"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "export WEFT_TOKEN=$(openssl rand -hex 16)")) << r.err;
}

// A port for a coordinator on loopback, of this test process: below the kernel's ephemeral
// range (so no bind to port 0 or outgoing connection takes it) and different for test processes
// running at once (ctest -j), which would otherwise join each other's jobs (same user, same
// per-user secret). A port free when asked could be handed to another test a moment later. Below
// the ports other tests' jobs pick too: weftrun's MASTER_PORT (up to 10,000 below the ephemeral
// range) and Slurm steps' (from 15000).
int own_port() { return 10000 + static_cast<int>(::getpid() % 5000); }

// Two weftruns of one job on one machine (a loopback coordinator: no token to set), the second
// given another -n: it refuses to start, naming both layouts, instead of its ranks failing on a
// world size that differs from node 0's.
TEST(MultiNode, ANodeGivenAnotherRankCountIsRefusedNamingBoth) {
  const std::string coordinator = "127.0.0.1:" + std::to_string(own_port());
  WeftrunProcess node0({"--nnodes", "2", "--node-rank", "0", "--coordinator", coordinator, "-n",
                        "2", "--timeout", "20", "--", WEFTRUN_RANK_HELPER_PATH, "allreduce"});
  WeftrunResult r = run_weftrun({"--nnodes", "2", "--node-rank", "1", "--coordinator", coordinator,
                                 "-n", "1", "--", WEFTRUN_RANK_HELPER_PATH, "allreduce"});
  node0.send_signal(SIGTERM);  // its ranks wait for ranks 2 and 3, which never come
  node0.finish(30s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err,
                       "node 0 of this job was started with --nnodes 2 -n 2 but node 1 "
                       "(this weftrun) with --nnodes 2 -n 1"))
      << r.err;
}

// torchrun's names across nodes: global RANK, the node's LOCAL_RANK and GROUP_RANK, and one
// MASTER_ADDR:MASTER_PORT for the whole job (node 0's, read by node 1), so that
// torch.distributed's env:// rendezvous meets across machines too.
TEST(MultiNode, TorchrunVariablesNameOneRendezvousForEveryNode) {
  const std::string coordinator = "127.0.0.1:" + std::to_string(own_port());
  std::vector<std::unique_ptr<WeftrunProcess>> nodes;
  for (int node : {0, 1})
    nodes.push_back(std::make_unique<WeftrunProcess>(shell(
        2,
        "echo torch $RANK/$WORLD_SIZE local $LOCAL_RANK/$LOCAL_WORLD_SIZE group $GROUP_RANK "
        "master $MASTER_ADDR:$MASTER_PORT",
        {"--nnodes", "2", "--node-rank", std::to_string(node), "--coordinator", coordinator})));
  WeftrunResult a = nodes[0]->finish(30s);
  WeftrunResult b = nodes[1]->finish(30s);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::regex line(R"(torch (\d)/4 local (\d)/2 group (\d) master (127\.0\.0\.1:\d+))");
  std::set<std::string> masters;
  std::set<int> ranks;
  const std::string out = a.out + b.out;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator();
       ++it) {
    int rank = std::stoi((*it)[1]);
    ranks.insert(rank);
    EXPECT_EQ(std::stoi((*it)[2]), rank % 2) << (*it)[0];
    EXPECT_EQ(std::stoi((*it)[3]), rank / 2) << (*it)[0];
    masters.insert((*it)[4]);
  }
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2, 3})) << out;
  EXPECT_EQ(masters.size(), 1u) << out;
}

// A rank killed before it joins leaves the coordinator nothing to notice: its weftrun posts the
// death notice, here from node 1 to node 0's coordinator, and node 0's ranks hear it.
TEST(MultiNode, ANodesWeftrunTellsTheOtherNodesOfItsDeadRank) {
  const std::string coordinator = "127.0.0.1:" + std::to_string(own_port());
  std::vector<std::unique_ptr<WeftrunProcess>> nodes;
  for (int node : {0, 1})
    nodes.push_back(std::make_unique<WeftrunProcess>(
        Args{"--nnodes", "2", "--node-rank", std::to_string(node), "--coordinator", coordinator,
             "-n", "2", "--timeout", "30", "--", WEFTRUN_RANK_HELPER_PATH, "hear-rank-lost", "2"}));
  WeftrunResult b = nodes[1]->finish(40s);
  WeftrunResult a = nodes[0]->finish(40s);
  EXPECT_EQ(b.exit_code, 128 + SIGKILL) << b.err;
  for (int rank : {0, 1})
    EXPECT_TRUE(contains(a.out, "[rank " + std::to_string(rank) + "] rank " + std::to_string(rank) +
                                    " heard: rank 2 (pid "))
        << a.out << a.err;
  EXPECT_TRUE(contains(a.out, "was killed by signal SIGKILL (9), as weftrun saw")) << a.out;
}

// A weft-coordinator started beside node 0 holds the --coordinator port: node 0's weftrun joins
// it instead of serving, and the job runs; a port held by something else is refused quickly.
TEST(MultiNode, NodeZeroJoinsAWeftCoordinatorOnItsOwnAddress) {
  const Args env = {"WEFT_TOKEN=multinode-test-token"};
  WeftrunProcess coordinator(Program{WEFT_COORDINATOR_PATH}, {"--port", "0"}, "", env);
  ASSERT_TRUE(coordinator.wait_for_stdout("listening on", 1, 20s)) << coordinator.out();
  std::smatch m;
  std::string out = coordinator.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(listening on (127\.0\.0\.1:\d+) )"))) << out;
  const std::string address = m[1];
  std::vector<std::unique_ptr<WeftrunProcess>> nodes;
  for (int node : {0, 1})
    nodes.push_back(std::make_unique<WeftrunProcess>(
        Args{"--nnodes", "2", "--node-rank", std::to_string(node), "--coordinator", address, "-n",
             "1", "--timeout", "30", "--", WEFTRUN_RANK_HELPER_PATH, "allreduce"},
        "", env));
  WeftrunResult a = nodes[0]->finish(40s);
  WeftrunResult b = nodes[1]->finish(40s);
  EXPECT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_EQ(b.exit_code, 0) << b.out << b.err;
  EXPECT_TRUE(contains(a.out, "[rank 0] rank 0 allreduce 3 over tcp")) << a.out;
  EXPECT_TRUE(contains(b.out, "[rank 1] rank 1 allreduce 3 over tcp")) << b.out;
  coordinator.send_signal(SIGTERM);
  EXPECT_EQ(coordinator.finish(20s).exit_code, 0);

  // Something that is not a coordinator on the port (a listening socket that never answers).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  WeftrunResult r = run_weftrun({"--nnodes", "2", "--node-rank", "0", "--coordinator", taken, "-n",
                                 "1", "--", WEFTRUN_RANK_HELPER_PATH, "allreduce"},
                                "", env);
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err,
                       "its port is taken by something that is not this job's "
                       "coordinator"))
      << r.err;
  EXPECT_LT(r.seconds, 15) << r.err;
}

// Milliseconds since the epoch, as the rank helper prints them.
long long wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Host b's link goes down mid-run: its ranks live on, but nothing of theirs reaches host a, so
// only the coordinator's heartbeat deadline can tell. Host a's ranks must fail with PeerLost
// naming both of b's ranks, within the heartbeat timeout of the cut.
TEST_F(TwoHostJob, RanksOfAHostCutOffAreNamedWithinTheHeartbeatTimeout) {
  constexpr double kHeartbeatTimeout = 2.0;
  std::vector<std::unique_ptr<WeftrunProcess>> nodes;
  for (int node : {1, 0}) {
    Args args = node_flags(node);
    args.insert(args.end(),
                {"--heartbeat-timeout", std::to_string(kHeartbeatTimeout), "--timeout", "60",
                 "--grace", "1", "--", WEFTRUN_RANK_HELPER_PATH, "until-cut-off"});
    nodes.push_back(hosts_->weftrun(node, args, env_));
  }
  WeftrunProcess& b = *nodes[0];
  WeftrunProcess& a = *nodes[1];
  ASSERT_TRUE(a.wait_for_stdout("passed step 5", 2, 60s)) << a.out();
  ASSERT_TRUE(b.wait_for_stdout("passed step 5", 2, 10s)) << b.out();
  const long long cut_at = wall_ms();
  ASSERT_TRUE(hosts_->cut_off_b());

  WeftrunResult r = a.finish(30s);
  b.send_signal(SIGTERM);  // cut off, its ranks wait on; weftrun stops them
  WeftrunResult rb = b.finish(30s);
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(rb.timed_out) << rb.out << rb.err;

  std::regex failed(R"(rank ([01]) failed at (\d+) ms in step \d+: PeerLost: ([^\n]*))");
  int survivors = 0;
  long long last = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), failed);
       it != std::sregex_iterator(); ++it) {
    ++survivors;
    last = std::max(last, std::stoll((*it)[2]));
    const std::string why = (*it)[3];
    std::regex lost(R"(rank ([23]) \(pid \d+ on 10\.77\.0\.2\) sent no heartbeat.*silent too: )"
                    R"(rank ([23]) \(pid \d+ on 10\.77\.0\.2\))");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(why, m, lost) && m[1] != m[2]) << why;
  }
  EXPECT_EQ(survivors, 2) << r.out << r.err;
  double detected = (last - cut_at) / 1000.0;
  std::printf(
      "from the cut to both of host a's ranks failed naming host b's: %.2f s "
      "(heartbeat timeout %.1f s)\n",
      detected, kHeartbeatTimeout);
  EXPECT_GE(detected, kHeartbeatTimeout - 0.5);
  EXPECT_LT(detected, kHeartbeatTimeout + 1.5);
}

// The sizes of weft's exact-resume tests: about 70 ms a step with 4 ranks on 2 cores, so the cut
// lands mid-run; --micro-batch 2 keeps every layout's micro-batch equal, so 2 ranks train the same
// global batch of 8 as 4 (only the order of the gradient sums differs).
const Args kResumeModel = {"--layers",  "2",  "--d-model", "128",  "--heads",       "4",
                           "--seq",     "64", "--batch",   "8",    "--micro-batch", "2",
                           "--steps",   "60", "--lr",      "3e-3", "--warmup",      "3",
                           "--threads", "1"};
constexpr int kResumeSteps = 60;

constexpr double kElasticHeartbeat = 2.0;

// weftrun --elastic --nnodes 2 -n 2 with checkpoints every 5 steps; `fault` strikes host b (its
// weftrun given) once a checkpoint is committed. Host a's weftrun, which serves the coordinator,
// must start a new generation of its own 2 ranks, which resumes from the newest committed
// checkpoint (both hosts write to one directory, as nodes do to a shared file system) and
// finishes with the losses of an uninterrupted 4-rank run.
void TwoHostJob::run_elastic(const std::function<bool(WeftrunProcess&)>& fault, ElasticRun& run) {
  Args reference = kResumeModel;
  reference.insert(reference.end(), {"--log-json", path("one_host.json")});
  WeftrunResult one = train(4, reference, {}, {"--backend", "tcp"});
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  const std::vector<double> uninterrupted = losses("one_host.json");
  ASSERT_EQ(uninterrupted.size(), static_cast<size_t>(kResumeSteps));

  std::vector<std::unique_ptr<WeftrunProcess>> nodes;
  for (int node : {1, 0}) {  // node 1 first: it waits for node 0's coordinator
    Args args = node_flags(node);
    args.insert(args.end(), {"--elastic", "--min-ranks", "2", "--heartbeat-timeout",
                             std::to_string(kElasticHeartbeat), "--grace", "1", "--timeout", "60",
                             "--", WEFT_TRAIN_PATH});
    args.insert(args.end(), kResumeModel.begin(), kResumeModel.end());
    args.insert(args.end(), {"--ckpt-dir", path("ckpt"), "--ckpt-every", "5", "--log-json",
                             path("two_hosts.json")});
    nodes.push_back(hosts_->weftrun(node, args, env_));
  }
  WeftrunProcess& b = *nodes[0];
  WeftrunProcess& a = *nodes[1];
  ASSERT_TRUE(a.wait_for_stdout("step-00000010 committed", 1, 120s)) << a.out() << a.err();
  const SteadyClock::time_point struck = SteadyClock::now();
  ASSERT_TRUE(fault(b));

  ASSERT_TRUE(a.wait_for_stderr("PeerLost", 2, 30s)) << a.out() << a.err();
  run.named_s = seconds_between(struck, SteadyClock::now());
  ASSERT_TRUE(a.wait_for_stderr("weftrun: restart 1 of at most", 1, 30s)) << a.out() << a.err();
  run.restarted_s = seconds_between(struck, SteadyClock::now());
  ASSERT_TRUE(a.wait_for_stdout("continuing after step", 1, 60s)) << a.out() << a.err();
  std::smatch m;
  const std::string so_far = a.out();
  ASSERT_TRUE(std::regex_search(so_far, m, std::regex(R"(continuing after step (\d+))")));
  run.from = std::stoi(m[1]);
  char first_step[32];
  std::snprintf(first_step, sizeof first_step, "step %4d/%d", run.from + 1, kResumeSteps);
  ASSERT_TRUE(a.wait_for_stdout(first_step, count_of(a.out(), first_step) + 1, 60s))
      << a.out() << a.err();
  run.resumed_s = seconds_between(struck, SteadyClock::now());

  run.a = a.finish(120s);
  run.b = b.finish(30s);
  const WeftrunResult& ra = run.a;
  ASSERT_FALSE(ra.timed_out) << ra.out << ra.err;
  ASSERT_FALSE(run.b.timed_out) << run.b.out << run.b.err;
  EXPECT_EQ(ra.exit_code, 0) << ra.out << ra.err;
  EXPECT_TRUE(contains(ra.err,
                       "weftrun: restart 1 of at most 3: generation 2 at 2 ranks (was 4: across "
                       "nodes a restart goes on with node 0's ranks alone); the last one ended "
                       "because rank "))
      << ra.err;
  EXPECT_EQ(count_of(ra.err, "weftrun: restart "), 1) << ra.err;
  EXPECT_TRUE(contains(ra.out, "| 2 ranks over tcp |")) << ra.out;
  EXPECT_TRUE(contains(ra.out, "batch 8 = dp 2 x 2 micro-batch(es) x 2")) << ra.out;

  // It resumed from the newest step committed before the fault: the coordinator commits a step
  // once every rank's shard is in, and rank 0 prints so a few steps later, so the newest printed
  // (or, with its shards still being written at the fault, the one before it) may be the newest
  // the first generation got to.
  const std::string first_generation = ra.out.substr(0, ra.out.find("| 2 ranks over tcp |"));
  int newest_printed = -1, last_step = -1;
  const std::regex committed(R"(step-(\d+) committed)"), step(R"(step +(\d+)/)");
  for (auto it = std::sregex_iterator(first_generation.begin(), first_generation.end(), committed);
       it != std::sregex_iterator(); ++it)
    newest_printed = std::max(newest_printed, std::stoi((*it)[1]));
  for (auto it = std::sregex_iterator(first_generation.begin(), first_generation.end(), step);
       it != std::sregex_iterator(); ++it)
    last_step = std::max(last_step, std::stoi((*it)[1]));
  EXPECT_GE(newest_printed, 10) << ra.out;
  EXPECT_GE(run.from, newest_printed) << ra.out;
  EXPECT_TRUE(run.from == last_step / 5 * 5 || run.from == last_step / 5 * 5 - 5)
      << "resumed after step " << run.from << ", the first generation got to step " << last_step;
  char from_dir[32];
  std::snprintf(from_dir, sizeof from_dir, "step-%08d", run.from);
  EXPECT_TRUE(fs::exists(dir_ / "ckpt" / from_dir)) << from_dir;

  // Every step's loss as the run that finished has it: the uninterrupted run's, up to the order
  // of the gradient sums (the tolerance of the single-host elastic tests).
  const std::map<int, double> loss = last_loss_of_each_step("two_hosts.json");
  for (int s = 1; s <= kResumeSteps; ++s) {
    ASSERT_TRUE(loss.count(s)) << "no loss for step " << s;
    EXPECT_NEAR(loss.at(s), uninterrupted[s - 1], 1e-5 * std::fabs(uninterrupted[s - 1]))
        << "step " << s;
  }
  // The second generation ran the steps after the checkpoint, and no others.
  EXPECT_TRUE(contains(ra.out, "summary: steps=" + std::to_string(kResumeSteps - run.from) + " "))
      << ra.out;
}

// Host b's link goes down: host a's ranks name both of b's within the heartbeat timeout, and host
// a goes on alone; host b's weftrun, whose coordinator no longer answers, stops its ranks and
// exits 1 naming it.
TEST_F(TwoHostJob, ElasticHostAGoesOnAloneFromTheLastCheckpointWhenHostBIsCutOff) {
  ElasticRun run;
  run_elastic([&](WeftrunProcess&) { return hosts_->cut_off_b(); }, run);
  if (HasFatalFailure()) return;
  int naming_both = 0;
  for (const std::string& line : lines_of(run.a.err))
    if (contains(line, "PeerLost") &&
        std::regex_search(line, std::regex(R"(rank ([23]) \(pid \d+ on 10\.77\.0\.2\) sent no )"
                                           R"(heartbeat.*silent too: rank ([23]) \(pid \d+ on )"
                                           R"(10\.77\.0\.2\))")))
      ++naming_both;
  EXPECT_GE(naming_both, 2) << run.a.err;
  EXPECT_EQ(run.b.exit_code, 1) << run.b.err;
  EXPECT_TRUE(contains(run.b.err, "the coordinator at 10.77.0.1:29400 has not answered for"))
      << run.b.err;
  EXPECT_TRUE(contains(run.b.err, "weftrun: not restarting: across nodes only node 0's weftrun"))
      << run.b.err;

  std::printf(
      "host b cut off after step-00000010 committed: host a's ranks named b's in %.2f s "
      "(heartbeat timeout %.1f s); restarted at 2 ranks %.2f s; resumed after step %d, its "
      "step %d at %.2f s\n",
      run.named_s, kElasticHeartbeat, run.restarted_s, run.from, run.from + 1, run.resumed_s);
  RecordProperty("named_ms", static_cast<int>(run.named_s * 1000));
  RecordProperty("resume_ms", static_cast<int>(run.resumed_s * 1000));
  EXPECT_GE(run.named_s, kElasticHeartbeat * 0.8 - 0.2);
  EXPECT_LT(run.named_s, kElasticHeartbeat + 2.0);
}

// Host b's weftrun is killed (SIGKILL): its ranks die with it, their streams to the coordinator
// end, and host a's ranks name the first of them at once; host a goes on alone as above.
TEST_F(TwoHostJob, ElasticHostAGoesOnAloneWhenHostBsWeftrunIsKilled) {
  ElasticRun run;
  run_elastic(
      [](WeftrunProcess& b) {
        b.send_signal(SIGKILL);
        return true;
      },
      run);
  if (HasFatalFailure()) return;
  int naming = 0;
  for (const std::string& line : lines_of(run.a.err))
    if (contains(line, "PeerLost") &&
        std::regex_search(line, std::regex(R"(rank [23] \(pid \d+ on 10\.77\.0\.2\) lost its )"
                                           R"(connection to the coordinator)")))
      ++naming;
  EXPECT_GE(naming, 2) << run.a.err;
  EXPECT_EQ(run.b.exit_code, 128 + SIGKILL) << run.b.err;
  std::printf(
      "host b's weftrun killed after step-00000010 committed: host a's ranks named b's in %.2f "
      "s; restarted at 2 ranks %.2f s; resumed after step %d, its step %d at %.2f s\n",
      run.named_s, run.restarted_s, run.from, run.from + 1, run.resumed_s);
  EXPECT_LT(run.named_s, kElasticHeartbeat);  // a stream's end, not a heartbeat's silence
}

}  // namespace
}  // namespace weft::testing
