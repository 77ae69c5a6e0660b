// A rank killed during set-up. Four ranks are started as torchrun starts them (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT: rank 0 serves the store), and rank 2 is killed with SIGKILL at a
// moment of set-up the test observes from outside (its /dev/shm file appearing, a key it
// publishes in the store). Rank 3 is held back until then where that keeps the others inside
// set-up. Whenever rank 2 had joined, every survivor must fail within 5 s with PeerLost naming
// it, and /dev/shm must hold nothing of the job. A rank that never joins is still named by a
// Timeout at WEFT_TIMEOUT. Every child has a hard deadline and is killed and reaped whatever
// happens; files the job left are removed after the checks.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "comm/communicator.h"
#include "runtime/socket.h"
#include "comm/rendezvous/coordinator.h"
#include "runtime/buffer.h"
#include "runtime/error.h"
#include "tests/support/fork_ranks.h"

namespace weft::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kRanks = 4;
constexpr int kVictim = 2;
constexpr auto kHardLimit = 40s;  // per job, whatever happens

// Ranks started the way torchrun starts them, each a forked child running `rank_main`.
class TorchrunJob {
 public:
  TorchrunJob(std::string backend, int timeout_s) : backend_(std::move(backend)) {
    static int counter = 0;
    job_id_ = "sd" + std::to_string(getpid()) + "x" + std::to_string(counter++);
    token_ = "token-" + job_id_;
    timeout_s_ = timeout_s;
    // MASTER_PORT + 1 is where rank 0 serves the store: take a port the kernel says is free.
    UniqueFd probe = comm::listen_tcp("127.0.0.1", 0, 1);
    store_port_ = comm::local_port(probe.get());
    start_ = Clock::now();
    deadline_ = start_ + kHardLimit;
  }
  ~TorchrunJob() {
    for (Rank& r : ranks_)
      if (r.pid > 0) kill(r.pid, SIGKILL);
    finish();
    for (const auto& name : leftover_shm_files(job_id_)) shm_unlink(("/" + name).c_str());
  }

  void start(int rank) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      for (const char* v : {"WEFT_RANK", "WEFT_WORLD_SIZE", "WEFT_STORE_ADDR", "WEFT_JOB_ID",
                            "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"})
        unsetenv(v);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(kRanks).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(kRanks).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(store_port_ - 1).c_str(), 1);
      setenv("TORCHELASTIC_RUN_ID", job_id_.c_str(), 1);
      setenv("WEFT_TOKEN", token_.c_str(), 1);
      setenv("WEFT_BACKEND", backend_.c_str(), 1);
      setenv("WEFT_TIMEOUT", std::to_string(timeout_s_).c_str(), 1);
      int code = rank_main(rank);
      fflush(nullptr);
      _exit(code);
    }
    close(fds[1]);
    Rank r;
    r.rank = rank;
    r.pid = pid;
    r.out = fds[0];
    r.started = Clock::now();
    ranks_.push_back(std::move(r));
  }

  // Kills `rank` (started earlier) with SIGKILL and remembers when.
  void kill_rank(int rank) {
    Rank& r = find(rank);
    ASSERT_GT(r.pid, 0) << "rank " << rank << " had already exited:\n" << summary();
    kill(r.pid, SIGKILL);
    r.killed_at = Clock::now();
  }

  // How rank `rank`'s file in /dev/shm is named.
  std::string file_name_of(int rank) const {
    return "weft-" + job_id_ + "-world-r" + std::to_string(rank) + "-p";
  }
  bool file_of(int rank) const {
    for (const auto& name : leftover_shm_files(job_id_))
      if (name.rfind(file_name_of(rank), 0) == 0) return true;
    return false;
  }
  // Waits for a key in the job's store, asking as an outsider (never a member), from a child
  // process: this one forks the ranks, and a process forked after gRPC started its threads in
  // its parent cannot use gRPC.
  bool key_appears(const std::string& key) {
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      try {
        auto store = comm::CoordinatorStore::connect("127.0.0.1", store_port_, token_, deadline_);
        store->get(key, deadline_);
        _exit(0);
      } catch (const Error& e) {
        fprintf(stderr, "%s\n", e.what());
        _exit(1);
      }
    }
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline_) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      pump(20ms);
    }
    bool appeared = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!appeared) ADD_FAILURE() << "store key '" << key << "' never appeared\n" << summary();
    return appeared;
  }

  // Reaps every rank (killing what is left at the hard limit).
  void finish() {
    while (std::any_of(ranks_.begin(), ranks_.end(), [](const Rank& r) { return r.pid > 0; })) {
      if (Clock::now() >= deadline_) {
        timed_out_ = true;
        for (Rank& r : ranks_)
          if (r.pid > 0) kill(r.pid, SIGKILL);
        deadline_ = Clock::time_point::max();
      }
      pump(20ms);
    }
    for (Rank& r : ranks_)
      if (r.out >= 0) drain(r), close(r.out), r.out = -1;
  }

  struct Rank {
    int rank = 0;
    pid_t pid = 0;  // 0 once reaped
    int out = -1;
    Clock::time_point started{}, killed_at{}, exited{};
    int exit_code = -1, signal = 0;
    std::string output;
  };
  const std::vector<Rank>& ranks() const { return ranks_; }
  const std::string& job_id() const { return job_id_; }
  bool timed_out() const { return timed_out_; }
  std::string summary() const {
    std::string s = timed_out_ ? "HARD LIMIT HIT\n" : "";
    for (const Rank& r : ranks_)
      s += "--- rank " + std::to_string(r.rank) + " exit=" + std::to_string(r.exit_code) +
           " signal=" + std::to_string(r.signal) + "\n" + r.output;
    return s;
  }

 private:
  // One rank: meet, then allreduces whose sums are checked, for long enough that a rank killed
  // just after set-up is killed in a live job.
  static int rank_main(int rank) {
    try {
      auto comm = comm::init_from_env();
      printf("rank %d met\n", rank);
      fflush(stdout);
      Buffer buf(64 * sizeof(float));
      auto* v = reinterpret_cast<float*>(buf.data());
      Deadline end = Clock::now() + 1500ms;
      for (bool more = true; more;) {
        for (int i = 0; i < 63; ++i) v[i] = 1;
        v[63] = rank == 0 && Clock::now() < end ? 1 : 0;  // rank 0's clock decides for all
        comm->allreduce(buf.view(DType::f32, 64)).wait();
        if (v[0] != kRanks) return 3;
        more = v[63] > 0;
      }
      return 0;
    } catch (const std::exception& e) {
      printf("rank %d failed: %s\n", rank, e.what());
      return 1;
    }
  }

  Rank& find(int rank) {
    for (Rank& r : ranks_)
      if (r.rank == rank) return r;
    std::abort();
  }
  void drain(Rank& r) {
    char buf[4096];
    ssize_t n;
    while ((n = read(r.out, buf, sizeof buf)) > 0) r.output.append(buf, static_cast<size_t>(n));
  }
  void pump(std::chrono::milliseconds wait) {
    std::vector<pollfd> pfds;
    for (const Rank& r : ranks_) pfds.push_back({r.out, POLLIN, 0});
    poll(pfds.data(), pfds.size(), static_cast<int>(wait.count()));
    for (size_t i = 0; i < ranks_.size(); ++i) {
      Rank& r = ranks_[i];
      if (r.out >= 0 && (pfds[i].revents & (POLLIN | POLLHUP))) {
        char buf[4096];
        ssize_t n = read(r.out, buf, sizeof buf);
        if (n > 0)
          r.output.append(buf, static_cast<size_t>(n));
        else
          close(r.out), r.out = -1;
      }
      int status = 0;
      if (r.pid > 0 && waitpid(r.pid, &status, WNOHANG) == r.pid) {
        r.pid = 0;
        r.exited = Clock::now();
        if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
      }
    }
  }

  std::string backend_, job_id_, token_;
  int timeout_s_ = 30;
  int store_port_ = 0;
  Clock::time_point start_, deadline_;
  std::vector<Rank> ranks_;
  bool timed_out_ = false;
};

// Whether `text` says "rank <r>" (not "rank <r>3").
bool names_rank(const std::string& text, int r) {
  const std::string name = "rank " + std::to_string(r);
  for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at + 1))
    if (at + name.size() == text.size() || !isdigit(text[at + name.size()])) return true;
  return false;
}

// Files created in /dev/shm, as the kernel reports them (inotify): a rank's file may live only
// milliseconds, too briefly to be seen by listing the directory.
class ShmCreations {
 public:
  ShmCreations() : fd_(inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
    EXPECT_GE(fd_.get(), 0);
    EXPECT_GE(inotify_add_watch(fd_.get(), "/dev/shm", IN_CREATE), 0);
  }
  // Waits until a file whose name starts with `prefix` has been created; false at the deadline.
  bool wait_for(const std::string& prefix, Deadline deadline) {
    alignas(inotify_event) char buf[8192];
    while (Clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      poll(&p, 1, 10);
      ssize_t n = read(fd_.get(), buf, sizeof buf);
      for (ssize_t at = 0; at < n;) {
        auto* e = reinterpret_cast<inotify_event*>(buf + at);
        if (e->len > 0 && std::string(e->name).rfind(prefix, 0) == 0) return true;
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
    return false;
  }

 private:
  UniqueFd fd_;
};

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Every survivor failed with PeerLost naming the victim within 5 s of the kill (or of its own
// start, for a rank started after it), and nothing of the job is left in /dev/shm.
void expect_survivors_name(TorchrunJob& job, int victim = kVictim) {
  job.finish();
  ASSERT_FALSE(job.timed_out()) << job.summary();
  Clock::time_point killed_at{};
  for (const auto& r : job.ranks())
    if (r.rank == victim) {
      EXPECT_EQ(r.signal, SIGKILL) << job.summary();
      killed_at = r.killed_at;
    }
  for (const auto& r : job.ranks()) {
    if (r.rank == victim) continue;
    EXPECT_EQ(r.exit_code, 1) << "rank " << r.rank << "\n" << job.summary();
    EXPECT_NE(r.output.find("failed: PeerLost: "), std::string::npos) << job.summary();
    EXPECT_TRUE(names_rank(r.output, victim)) << job.summary();
    double waited = seconds_between(std::max(killed_at, r.started), r.exited);
    EXPECT_LT(waited, 5.0) << "rank " << r.rank << " waited " << waited << " s\n" << job.summary();
  }
  EXPECT_EQ(leftover_shm_files(job.job_id()), std::vector<std::string>{}) << job.summary();
}

// Starts every rank but the victim and waits until each has joined and published `key`/<rank>
// (so each will wait for the victim's), then starts the victim.
void start_victim_last(TorchrunJob& job, const std::string& key) {
  for (int r : {0, 1, 3}) job.start(r);
  for (int r : {0, 1, 3}) ASSERT_TRUE(job.key_appears(key + std::to_string(r)));
  job.start(kVictim);
}

TEST(SetupDeath, KilledAfterCreatingItsShmFile) {
  TorchrunJob job("shm", 30);
  ShmCreations created;
  ASSERT_NO_FATAL_FAILURE(start_victim_last(job, "world/shm/ready/"));
  ASSERT_TRUE(created.wait_for(job.file_name_of(kVictim), Clock::now() + 20s)) << job.summary();
  job.kill_rank(kVictim);
  expect_survivors_name(job);
}

TEST(SetupDeath, KilledAfterPublishingItsShmFile) {
  TorchrunJob job("shm", 30);
  ASSERT_NO_FATAL_FAILURE(start_victim_last(job, "world/shm/ready/"));
  ASSERT_TRUE(job.key_appears("world/shm/ready/2"));  // the others map it now
  job.kill_rank(kVictim);
  expect_survivors_name(job);
}

TEST(SetupDeath, KilledAfterMappingItsPeers) {
  TorchrunJob job("shm", 30);
  ASSERT_NO_FATAL_FAILURE(start_victim_last(job, "world/shm/ready/"));
  ASSERT_TRUE(job.key_appears("world/shm/mapped/2"));
  job.kill_rank(kVictim);  // the others are at the barrier, or just past it
  expect_survivors_name(job);
}

TEST(SetupDeath, KilledDuringTcpSetUp) {
  TorchrunJob job("tcp", 30);
  // Rank 3 dials rank 2 next; ranks 0 and 1 wait for rank 2's call.
  ASSERT_NO_FATAL_FAILURE(start_victim_last(job, "world/tcp/addr/"));
  ASSERT_TRUE(job.key_appears("world/tcp/addr/2"));
  job.kill_rank(kVictim);
  expect_survivors_name(job);
}

// Under torchrun-style variables rank 0 serves the store: losing the store is losing rank 0.
TEST(SetupDeath, KilledRankZeroWhichServesTheStore) {
  TorchrunJob job("shm", 30);
  for (int r : {0, 1, 2}) job.start(r);
  ASSERT_TRUE(job.key_appears("world/shm/ready/1"));  // 1 and 2 have joined
  ASSERT_TRUE(job.key_appears("world/shm/ready/2"));
  job.kill_rank(0);
  expect_survivors_name(job, 0);
}

TEST(SetupDeath, ARankThatNeverJoinsIsNamedAtTheTimeout) {
  constexpr int kTimeout = 4;
  TorchrunJob job("shm", kTimeout);
  // Rank 0 last: it serves the store, which must outlive the others' deadlines for them to
  // time out naming rank 2 rather than lose the store.
  for (int r : {1, 3}) job.start(r);
  std::this_thread::sleep_for(300ms);
  job.start(0);
  job.finish();
  ASSERT_FALSE(job.timed_out()) << job.summary();
  for (const auto& r : job.ranks()) {
    EXPECT_EQ(r.exit_code, 1) << job.summary();
    EXPECT_NE(r.output.find("Timeout"), std::string::npos) << job.summary();
    EXPECT_TRUE(names_rank(r.output, kVictim)) << job.summary();
    double took = seconds_between(r.started, r.exited);
    EXPECT_GT(took, kTimeout - 0.5) << job.summary();
    EXPECT_LT(took, kTimeout + 3.0) << "later than WEFT_TIMEOUT\n" << job.summary();
  }
  EXPECT_EQ(leftover_shm_files(job.job_id()), std::vector<std::string>{}) << job.summary();
}

// A job whose only started rank was killed leaves its file (no one is there to remove it); the
// next job on the node removes it as it sets up. (Once the file is published: one killed while
// still writing its header is left for a minute, as it might be another pid namespace's.)
TEST(SetupDeath, TheNextJobRemovesFilesOfAJobThatIsGone) {
  TorchrunJob dead("shm", 30);
  dead.start(0);
  ASSERT_TRUE(dead.key_appears("world/shm/ready/0"));
  ASSERT_TRUE(dead.file_of(0));
  dead.kill_rank(0);
  dead.finish();

  TorchrunJob next("shm", 30);
  for (int r = 0; r < kRanks; ++r) next.start(r);
  next.finish();
  for (const auto& r : next.ranks()) EXPECT_EQ(r.exit_code, 0) << next.summary();
  EXPECT_EQ(leftover_shm_files(dead.job_id()), std::vector<std::string>{});
}

}  // namespace
}  // namespace weft::testing
