// Shared-memory transport: ranks as threads of this process, and as forked processes for what
// threads cannot show (a rank killed with SIGKILL). The store is a directory of files, so the
// same one serves threads and processes without depending on the TCP store.
#include "comm/transport/shm/transport_shm.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "comm/rendezvous/store.h"
#include "comm/transport.h"
#include "comm/transport_setup.h"
#include "runtime/error.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;
using Request = Transport::Request;

// ---- a store in a directory: one file per key, written by rename so readers see it whole ----

class FileStore : public Store {
 public:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {}

  void set(const std::string& key, const std::string& value) override {
    std::string tmp = dir_ + "/.tmp-" + std::to_string(getpid()) + "-" +
                      std::to_string(counter_.fetch_add(1)) + "-" +
                      std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
    std::ofstream(tmp, std::ios::binary) << value;
    std::filesystem::rename(tmp, path(key));
  }
  std::string get(const std::string& key, Deadline deadline) override {
    for (;;) {
      if (auto v = read(key)) return *v;
      if (Clock::now() >= deadline)
        throw Error(ErrorCode::Timeout, "test store: key " + key + " never appeared");
      std::this_thread::sleep_for(1ms);
    }
  }
  int64_t add(const std::string& key, int64_t delta) override {
    int lock = open((dir_ + "/.lock").c_str(), O_CREAT | O_RDWR, 0600);
    flock(lock, LOCK_EX);
    auto v = read(key);
    int64_t n = (v ? std::stoll(*v) : 0) + delta;
    set(key, std::to_string(n));
    flock(lock, LOCK_UN);
    close(lock);
    return n;
  }
  void wait(const std::vector<std::string>& keys, Deadline deadline) override {
    for (const auto& k : keys) get(k, deadline);
  }

 private:
  std::string path(const std::string& key) const {
    std::string name = key;
    for (char& c : name)
      if (c == '/') c = '%';
    return dir_ + "/" + name;
  }
  std::optional<std::string> read(const std::string& key) const {
    std::ifstream in(path(key), std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string dir_;
  static inline std::atomic<uint64_t> counter_{0};
};

// A fresh store directory and job id per test; the directory is removed afterwards.
class ShmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Only [A-Za-z0-9._] survive into the file name, so shm_files_of_job() can find it.
    job_ = "shmtest_" + std::to_string(getpid()) + "_" + std::to_string(next_job_++);
    dir_ = std::filesystem::temp_directory_path() / job_;
    std::filesystem::create_directories(dir_);
    store_ = std::make_unique<FileStore>(dir_.string());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    EXPECT_EQ(shm_files_of_job(), 0) << "shared-memory files left behind";
  }

  std::unique_ptr<Transport> make(int rank, int size, std::chrono::milliseconds limit = 10s) {
    TransportSetup s;
    s.store = store_.get();
    s.rank = rank;
    s.size = size;
    s.job_id = job_;
    s.token = "secret";
    s.group_tag = "world";
    s.deadline = Clock::now() + limit;
    return make_shm_transport(s);
  }

  // Builds one transport per rank on its own thread (set-up is collective), then runs
  // body(rank, transport) on each; returns each rank's failure text ("" when it succeeded).
  std::vector<std::string> run_ranks(
      int n, const std::function<void(int, Transport&)>& body,
      const std::function<void(std::vector<std::unique_ptr<Transport>>&)>& after_setup = {}) {
    std::vector<std::unique_ptr<Transport>> ts(n);
    std::vector<std::string> errors(n);
    auto build = [&](int r) {
      try {
        ts[r] = make(r, n);
      } catch (const std::exception& e) {
        errors[r] = std::string("set-up: ") + e.what();
      }
    };
    run_threads(n, build);
    for (const auto& e : errors)
      if (!e.empty()) return errors;
    if (after_setup) after_setup(ts);
    run_threads(n, [&](int r) {
      try {
        body(r, *ts[r]);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
    return errors;
  }

  static void run_threads(int n, const std::function<void(int)>& fn) {
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r) threads.emplace_back(fn, r);
    for (auto& t : threads) t.join();
  }

  int shm_files_of_job() const {
    int count = 0;
    if (DIR* d = opendir("/dev/shm")) {
      while (dirent* e = readdir(d))
        if (std::strstr(e->d_name, job_.c_str()) != nullptr) ++count;
      closedir(d);
    }
    return count;
  }

  std::string job_;
  std::filesystem::path dir_;
  std::unique_ptr<FileStore> store_;
  static inline int next_job_ = 0;
};

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---- helpers ----

void finish_all(Transport& t, const std::vector<Request>& rs,
                std::chrono::milliseconds limit = 10s) {
  Deadline d = Clock::now() + limit;
  std::vector<bool> done(rs.size(), false);
  size_t left = rs.size();
  while (left > 0) {
    for (size_t i = 0; i < rs.size(); ++i)
      if (!done[i] && t.test(rs[i])) {
        done[i] = true;
        --left;
      }
    if (left == 0) break;
    if (Clock::now() > d)
      throw std::runtime_error("rank " + std::to_string(t.rank()) + ": requests not done in time");
    t.wait_for_progress(d);
  }
}

void finish(Transport& t, Request r, std::chrono::milliseconds limit = 10s) {
  finish_all(t, {r}, limit);
}

// Runs fn and returns the weft::Error it throws (fails the test when it throws nothing).
std::optional<Error> error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a weft::Error";
  return std::nullopt;
}

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void fill(std::vector<uint8_t>& buf, uint64_t seed) {
  for (size_t i = 0; i < buf.size(); i += 8) {
    uint64_t v = mix(seed * 0x100000001b3ULL + i);
    std::memcpy(buf.data() + i, &v, std::min<size_t>(8, buf.size() - i));
  }
}

// Index of the first byte that differs from fill(seed), or -1.
long long first_mismatch(const std::vector<uint8_t>& buf, uint64_t seed) {
  for (size_t i = 0; i < buf.size(); i += 8) {
    uint64_t v = mix(seed * 0x100000001b3ULL + i);
    size_t n = std::min<size_t>(8, buf.size() - i);
    if (std::memcmp(buf.data() + i, &v, n) == 0) continue;
    for (size_t j = 0; j < n; ++j)
      if (buf[i + j] != reinterpret_cast<const uint8_t*>(&v)[j])
        return static_cast<long long>(i + j);
  }
  return -1;
}

Fingerprint fp_of(OpKind op, uint64_t seq, uint64_t count, int root = -1) {
  Fingerprint fp;
  fp.seq = seq;
  fp.op = op;
  fp.dtype = DType::u8;
  fp.count = count;
  fp.root = root;
  return fp;
}

void expect_no_errors(const std::vector<std::string>& errors) {
  for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

// ---- data movement ----

class ShmRingTest : public ShmTest, public ::testing::WithParamInterface<int> {};

TEST_P(ShmRingTest, RingExchangeIsByteExact) {
  const int n = GetParam();
  const size_t sizes[] = {0, 1, 1000003, 64u << 20};
  expect_no_errors(run_ranks(n, [&](int me, Transport& t) {
    int next = (me + 1) % n, prev = (me + n - 1) % n;
    for (size_t k = 0; k < std::size(sizes); ++k) {
      size_t bytes = sizes[k];
      std::vector<uint8_t> out(bytes), in(bytes);
      fill(out, me * 1000 + k);
      // Point-to-point pairing: the sender names the receiver, the receiver names the sender.
      Request rr = t.irecv(prev, in.data(), bytes, fp_of(OpKind::recv, k, bytes, prev));
      Request sr = t.isend(next, out.data(), bytes, fp_of(OpKind::send, k, bytes, next));
      finish_all(t, {rr, sr});
      long long bad = first_mismatch(in, prev * 1000 + k);
      if (bad >= 0)
        throw std::runtime_error("rank " + std::to_string(me) + ": " + std::to_string(bytes) +
                                 "-byte message differs at byte " + std::to_string(bad));
    }
  }));
}

INSTANTIATE_TEST_SUITE_P(Ranks, ShmRingTest, ::testing::Values(2, 3, 4),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

TEST_F(ShmTest, MessagesLargerThanTheFifoFlowThroughBothWays) {
  ScopedEnv ring("WEFT_SHM_RING_BYTES", "4096");
  const int n = 3;
  const size_t bytes = 1000003;
  expect_no_errors(run_ranks(n, [&](int me, Transport& t) {
    // Everyone sends to everyone (itself included) at once: no pair may deadlock on full FIFOs.
    std::vector<std::vector<uint8_t>> out(n, std::vector<uint8_t>(bytes));
    std::vector<std::vector<uint8_t>> in(n, std::vector<uint8_t>(bytes));
    std::vector<Request> rs;
    for (int p = 0; p < n; ++p) {
      fill(out[p], me * 10 + p);
      rs.push_back(t.isend(p, out[p].data(), bytes, fp_of(OpKind::alltoall, 0, bytes)));
      rs.push_back(t.irecv(p, in[p].data(), bytes, fp_of(OpKind::alltoall, 0, bytes)));
    }
    finish_all(t, rs);
    for (int p = 0; p < n; ++p)
      if (long long bad = first_mismatch(in[p], p * 10 + me); bad >= 0)
        throw std::runtime_error("rank " + std::to_string(me) + " from " + std::to_string(p) +
                                 ": differs at byte " + std::to_string(bad));
  }));
}

TEST_F(ShmTest, ManySmallMessagesArriveInOrder) {
  ScopedEnv ring("WEFT_SHM_RING_BYTES", "4096");
  const int count = 3000;
  expect_no_errors(run_ranks(2, [&](int me, Transport& t) {
    int peer = 1 - me;
    std::vector<std::vector<uint8_t>> out(count), in(count);
    std::vector<Request> sends, recvs;
    for (int i = 0; i < count; ++i) {
      size_t bytes = static_cast<size_t>(i % 97);
      out[i].resize(bytes);
      in[i].resize(bytes);
      fill(out[i], me * 100000 + i);
      recvs.push_back(t.irecv(peer, in[i].data(), bytes, fp_of(OpKind::allgather, i, bytes)));
      sends.push_back(t.isend(peer, out[i].data(), bytes, fp_of(OpKind::allgather, i, bytes)));
    }
    for (int i = 0; i < count; ++i) {
      finish(t, sends[i]);
      finish(t, recvs[i]);
      if (first_mismatch(in[i], peer * 100000 + i) >= 0)
        throw std::runtime_error("message " + std::to_string(i) + " corrupt or out of order");
    }
  }));
}

TEST_F(ShmTest, SetUpLeavesNoFilesInDevShm) {
  int files_after_setup = -1;
  expect_no_errors(run_ranks(
      3,
      [&](int me, Transport& t) {
        uint8_t x = static_cast<uint8_t>(me), y = 0;
        finish_all(t, {t.isend((me + 1) % 3, &x, 1, fp_of(OpKind::barrier, 0, 1)),
                       t.irecv((me + 2) % 3, &y, 1, fp_of(OpKind::barrier, 0, 1))});
        if (y != (me + 2) % 3) throw std::runtime_error("wrong byte");
      },
      [&](auto&) { files_after_setup = shm_files_of_job(); }));
  EXPECT_EQ(files_after_setup, 0);
}

// ---- failures ----

TEST_F(ShmTest, SizeMismatchNamesBothSizesAndAbortsThePeer) {
  std::optional<Error> recv_error, peer_error;
  double peer_seconds = 0;
  expect_no_errors(run_ranks(2, [&](int me, Transport& t) {
    std::vector<uint8_t> buf(200);
    if (me == 0) {
      Request s = t.isend(1, buf.data(), 100, fp_of(OpKind::broadcast, 3, 100, 0));
      finish(t, s);
      // Rank 1 will fail and abort: this pending receive must fail fast, not time out.
      auto start = Clock::now();
      Request r = t.irecv(1, buf.data(), 8, fp_of(OpKind::broadcast, 4, 8, 0));
      peer_error = error_of([&] { finish(t, r); });
      peer_seconds = seconds_since(start);
    } else {
      Request r = t.irecv(0, buf.data(), 200, fp_of(OpKind::broadcast, 3, 100, 0));
      recv_error = error_of([&] { finish(t, r); });
    }
  }));
  ASSERT_TRUE(recv_error && peer_error);
  EXPECT_EQ(recv_error->code(), ErrorCode::InvalidArgument);
  std::string what = recv_error->what();
  EXPECT_NE(what.find("100 bytes"), std::string::npos) << what;
  EXPECT_NE(what.find("200 bytes"), std::string::npos) << what;
  EXPECT_NE(what.find("rank 0"), std::string::npos) << what;
  EXPECT_NE(what.find("rank 1"), std::string::npos) << what;
  EXPECT_EQ(what.find("InvalidArgument: InvalidArgument"), std::string::npos) << what;
  // The peer fails with the mismatch's own code: ranks that disagree all fail InvalidArgument.
  EXPECT_EQ(peer_error->code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(peer_error->what()).find("rank 1 aborted"), std::string::npos)
      << peer_error->what();
  EXPECT_EQ(std::string(peer_error->what()).find("InvalidArgument: InvalidArgument"),
            std::string::npos)
      << peer_error->what();
  EXPECT_LT(peer_seconds, 1.0);
}

// Small messages travel through mailbox slots and large ones through the FIFO; a size
// mismatch across that line must still be reported, in both directions, not hang.
class ShmPathMismatchTest : public ShmTest,
                            public ::testing::WithParamInterface<std::pair<size_t, size_t>> {};

TEST_P(ShmPathMismatchTest, NamesBothSizes) {
  auto [sent, expected] = GetParam();
  std::optional<Error> recv_error;
  expect_no_errors(run_ranks(2, [&](int me, Transport& t) {
    std::vector<uint8_t> buf(std::max(sent, expected));
    if (me == 0) {
      // A small send completes at once; a large one fails with Aborted once rank 1 has seen
      // the mismatch. Either way it must end.
      try {
        finish(t, t.isend(1, buf.data(), sent, fp_of(OpKind::send, 1, sent)));
      } catch (const Error&) {
      }
    } else {
      recv_error = error_of(
          [&] { finish(t, t.irecv(0, buf.data(), expected, fp_of(OpKind::send, 1, sent))); });
    }
  }));
  ASSERT_TRUE(recv_error);
  EXPECT_EQ(recv_error->code(), ErrorCode::InvalidArgument) << recv_error->what();
  std::string what = recv_error->what();
  EXPECT_NE(what.find(std::to_string(sent) + " bytes"), std::string::npos) << what;
  EXPECT_NE(what.find(std::to_string(expected) + " bytes"), std::string::npos) << what;
}

INSTANTIATE_TEST_SUITE_P(SmallVersusLarge, ShmPathMismatchTest,
                         ::testing::Values(std::make_pair<size_t, size_t>(16, 100000),
                                           std::make_pair<size_t, size_t>(100000, 16)));

// Alternating small (mailbox) and large (FIFO) messages, many more than there are mailbox
// slots, with the receiver posting late: order and contents survive the mix.
TEST_F(ShmTest, MailboxAndFifoMessagesKeepTheirOrder) {
  ScopedEnv ring("WEFT_SHM_RING_BYTES", "4096");
  const int count = 200;
  auto size_of = [](int i) { return static_cast<size_t>(i % 3 == 0 ? 5000 + i : i % 50); };
  expect_no_errors(run_ranks(2, [&](int me, Transport& t) {
    std::vector<std::vector<uint8_t>> out(count), in(count);
    std::vector<Request> sends;
    for (int i = 0; i < count; ++i) {
      out[i].resize(size_of(i));
      in[i].resize(size_of(i));
      fill(out[i], me * 100000 + i);
      sends.push_back(t.isend(1 - me, out[i].data(), out[i].size(),
                              fp_of(OpKind::send, i, out[i].size())));
    }
    for (int i = 0; i < count; ++i) {
      finish(t, t.irecv(1 - me, in[i].data(), in[i].size(), fp_of(OpKind::send, i, in[i].size())));
      if (first_mismatch(in[i], (1 - me) * 100000 + i) >= 0)
        throw std::runtime_error("message " + std::to_string(i) + " corrupt or out of order");
    }
    finish_all(t, sends);
  }));
}

TEST_F(ShmTest, FingerprintMismatchNamesBothCollectives) {
  std::optional<Error> err;
  expect_no_errors(run_ranks(2, [&](int me, Transport& t) {
    float v[4] = {};
    Fingerprint mine = fp_of(OpKind::allreduce, 7, 4);
    mine.dtype = DType::f32;
    if (me == 0) {
      finish(t, t.isend(1, v, sizeof v, mine));
    } else {
      Fingerprint other = mine;
      other.op = OpKind::allgather;
      err = error_of([&] { finish(t, t.irecv(0, v, sizeof v, other)); });
    }
  }));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(err->what()).find("allreduce #7"), std::string::npos) << err->what();
  EXPECT_NE(std::string(err->what()).find("allgather #7"), std::string::npos) << err->what();
}

TEST_F(ShmTest, AbortFailsEveryRankFastWithTheReason) {
  const int n = 3;
  std::vector<std::optional<Error>> errs(n);
  std::vector<double> seconds(n);
  std::optional<Error> after;
  expect_no_errors(run_ranks(n, [&](int me, Transport& t) {
    std::vector<uint8_t> buf(1 << 20);
    auto start = Clock::now();
    // Everyone waits for a message nobody sends; rank 0 gives up from another thread.
    std::thread aborter;
    if (me == 0)
      aborter = std::thread([&t] {
        std::this_thread::sleep_for(100ms);
        t.abort("disk full on rank 0");
        t.abort("second call is ignored");
      });
    Request r = t.irecv((me + 1) % n, buf.data(), buf.size(), fp_of(OpKind::allreduce, 1, 1 << 20));
    errs[me] = error_of([&] { finish(t, r); });
    seconds[me] = seconds_since(start);
    if (aborter.joinable()) aborter.join();
    if (me == 1)
      after = error_of([&] { finish(t, t.isend(2, buf.data(), 8, fp_of(OpKind::send, 2, 8))); });
  }));
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(errs[r]) << r;
    EXPECT_EQ(errs[r]->code(), ErrorCode::Aborted) << r;
    EXPECT_NE(std::string(errs[r]->what()).find("disk full on rank 0"), std::string::npos)
        << errs[r]->what();
    EXPECT_LT(seconds[r], 1.1) << "rank " << r;
  }
  EXPECT_NE(std::string(errs[1]->what()).find("rank 0 aborted"), std::string::npos);
  EXPECT_EQ(std::string(errs[0]->what()).find("second call"), std::string::npos);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->code(), ErrorCode::Aborted);
}

TEST_F(ShmTest, ClosedPeerDeliversWhatItSentThenFailsWithPeerLost) {
  std::vector<std::unique_ptr<Transport>>* all = nullptr;
  std::optional<Error> recv_err, send_err;
  std::atomic<bool> closed{false};
  expect_no_errors(run_ranks(
      2,
      [&](int me, Transport& t) {
        uint32_t v = 0;
        if (me == 1) {
          v = 42;
          finish(t, t.isend(0, &v, sizeof v, fp_of(OpKind::send, 0, 4, 0)));
          (*all)[1].reset();  // leaves the group while rank 0 still expects more
          closed = true;
          return;
        }
        while (!closed) std::this_thread::sleep_for(1ms);
        finish(t, t.irecv(1, &v, sizeof v, fp_of(OpKind::recv, 0, 4, 1)));
        if (v != 42) throw std::runtime_error("the message sent before closing was lost");
        recv_err =
            error_of([&] { finish(t, t.irecv(1, &v, sizeof v, fp_of(OpKind::recv, 1, 4, 1))); });
        send_err =
            error_of([&] { finish(t, t.isend(1, &v, sizeof v, fp_of(OpKind::send, 2, 4, 1))); });
      },
      [&](auto& ts) { all = &ts; }));
  ASSERT_TRUE(recv_err && send_err);
  EXPECT_EQ(recv_err->code(), ErrorCode::PeerLost);
  EXPECT_NE(std::string(recv_err->what()).find("rank 1 lost"), std::string::npos)
      << recv_err->what();
  EXPECT_NE(std::string(recv_err->what()).find("receiving recv #1"), std::string::npos)
      << recv_err->what();
  EXPECT_EQ(send_err->code(), ErrorCode::PeerLost);
  EXPECT_NE(std::string(send_err->what()).find("sending send #2"), std::string::npos)
      << send_err->what();
}

TEST_F(ShmTest, IdleWaitSleepsInsteadOfSpinning) {
  double cpu_seconds = -1;
  expect_no_errors(run_ranks(2, [&](int me, Transport& t) {
    uint64_t v = 7;
    if (me == 0) {
      std::this_thread::sleep_for(400ms);
      finish(t, t.isend(1, &v, sizeof v, fp_of(OpKind::broadcast, 0, 8, 0)));
      return;
    }
    rusage before{}, after{};
    getrusage(RUSAGE_THREAD, &before);
    finish(t, t.irecv(0, &v, sizeof v, fp_of(OpKind::broadcast, 0, 8, 0)));
    getrusage(RUSAGE_THREAD, &after);
    auto secs = [](const rusage& u) {
      return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
             (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    };
    cpu_seconds = secs(after) - secs(before);
  }));
  EXPECT_GE(cpu_seconds, 0);
  EXPECT_LT(cpu_seconds, 0.1) << "a rank waiting 400 ms burned this much CPU";
}

// Pins the calling thread, and the threads it starts from now on, to one of the CPUs it may
// use, so that a group of ranks started here outnumbers its cores; restores the mask after.
class OneCpu {
 public:
  OneCpu() {
    sched_getaffinity(0, sizeof old_, &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &old_)) {
        CPU_SET(c, &one);
        break;
      }
    EXPECT_EQ(sched_setaffinity(0, sizeof one, &one), 0) << std::strerror(errno);
  }
  ~OneCpu() { sched_setaffinity(0, sizeof old_, &old_); }
  OneCpu(const OneCpu&) = delete;
  OneCpu& operator=(const OneCpu&) = delete;

 private:
  cpu_set_t old_;
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The blocking path, with a core per rank (the waiter spins, yields, then sleeps) and with two
// ranks on one core (it only yields, then sleeps): a rank with nothing to receive for 200 ms
// sleeps instead of burning its core, and the message wakes it at once. The liveness check
// is set to 20 s, so a lost wake-up would show as a receive that takes seconds.
class ShmWaitTest : public ShmTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ShmWaitTest, IdleWaiterSleepsAndTheMessageWakesItPromptly) {
  ScopedEnv check("WEFT_PEER_CHECK_MS", "20000");
  std::optional<OneCpu> one_cpu;
  if (GetParam()) one_cpu.emplace();
  constexpr int kRounds = 3;
  std::atomic<Deadline> sent_at[kRounds];
  std::atomic<int> posted{-1};  // the last round whose receive is posted: the wait starts then
  double cpu[kRounds] = {}, waited[kRounds] = {}, wake[kRounds] = {};
  expect_no_errors(run_ranks(2, [&](int me, Transport& t) {
    for (int i = 0; i < kRounds; ++i) {
      uint64_t v = static_cast<uint64_t>(i);
      Fingerprint fp = fp_of(OpKind::send, static_cast<uint64_t>(i), sizeof v);
      if (me == 0) {
        // A loaded machine may start the receiver late: count the 200 ms from its post.
        while (posted.load() < i) std::this_thread::sleep_for(1ms);
        std::this_thread::sleep_for(200ms);
        sent_at[i] = Clock::now();
        finish(t, t.isend(1, &v, sizeof v, fp));
        continue;
      }
      Request r = t.irecv(0, &v, sizeof v, fp);
      double cpu_before = thread_cpu_seconds();
      auto start = Clock::now();
      posted = i;
      finish(t, r);
      auto done = Clock::now();
      cpu[i] = thread_cpu_seconds() - cpu_before;
      waited[i] = std::chrono::duration<double>(done - start).count();
      wake[i] = std::chrono::duration<double>(done - sent_at[i].load()).count();
      if (v != static_cast<uint64_t>(i)) throw std::runtime_error("wrong message");
    }
  }));
  for (int i = 0; i < kRounds; ++i) {
    EXPECT_GE(waited[i], 0.15) << "round " << i << ": the receive did not wait";
    EXPECT_LT(cpu[i], 0.1 * waited[i])
        << "round " << i << ": waiting " << waited[i] << " s burned " << cpu[i] << " s of CPU";
  }
  std::sort(wake, wake + kRounds);
  EXPECT_LT(wake[kRounds / 2], 0.05) << "median time from send to the waiter's return: "
                                      << wake[kRounds / 2] << " s";
}

INSTANTIATE_TEST_SUITE_P(Cores, ShmWaitTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "TwoRanksOnOneCore" : "CorePerRank";
                         });

TEST_F(ShmTest, BadFifoSizeIsRejectedNamingTheVariable) {
  ScopedEnv ring("WEFT_SHM_RING_BYTES", "3000");
  auto err = error_of([&] { make(0, 1); });
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(err->what()).find("WEFT_SHM_RING_BYTES=3000"), std::string::npos);
}

TEST_F(ShmTest, MissingPeerTimesOutAndLeavesNoFile) {
  int files_while_waiting = -1;
  std::thread look([&] {
    std::this_thread::sleep_for(150ms);
    files_while_waiting = shm_files_of_job();
  });
  auto err = error_of([&] { make(0, 2, 400ms); });
  look.join();
  EXPECT_EQ(files_while_waiting, 1) << "rank 0's file should exist until set-up ends";
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code(), ErrorCode::Timeout);
  EXPECT_NE(std::string(err->what()).find("waiting for rank 1"), std::string::npos) << err->what();
  EXPECT_EQ(shm_files_of_job(), 0);
}

TEST_F(ShmTest, MisuseIsReportedNotIgnored) {
  auto t = make(0, 1);
  uint8_t b = 0;
  auto bad_peer = error_of([&] { t->isend(1, &b, 1, fp_of(OpKind::send, 0, 1, 1)); });
  ASSERT_TRUE(bad_peer);
  EXPECT_EQ(bad_peer->code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(bad_peer->what()).find("the group has 1 ranks"), std::string::npos);
  auto null_buffer = error_of([&] { t->irecv(0, nullptr, 8, fp_of(OpKind::recv, 0, 8, 0)); });
  ASSERT_TRUE(null_buffer);
  EXPECT_EQ(null_buffer->code(), ErrorCode::InvalidArgument);
  Request r = t->isend(0, &b, 1, fp_of(OpKind::send, 0, 1, 0));
  uint8_t got = 1;
  finish_all(*t, {r, t->irecv(0, &got, 1, fp_of(OpKind::recv, 0, 1, 0))});
  EXPECT_EQ(got, 0);
  auto retired = error_of([&] { t->test(r); });
  ASSERT_TRUE(retired);
  EXPECT_EQ(retired->code(), ErrorCode::Internal);
}

TEST_F(ShmTest, SingleRankTalksToItself) {
  auto t = make(0, 1);
  std::vector<uint8_t> out(3 << 20), in(out.size());
  fill(out, 5);
  finish_all(*t, {t->irecv(0, in.data(), in.size(), fp_of(OpKind::send, 0, in.size())),
                  t->isend(0, out.data(), out.size(), fp_of(OpKind::send, 0, out.size()))});
  EXPECT_EQ(first_mismatch(in, 5), -1);
}

// ---- real processes ----

// A forked rank: runs fn in the child and reports its failure text through a pipe. The
// destructor kills and reaps a child that is still running.
class ChildRank {
 public:
  explicit ChildRank(const std::function<void()>& fn) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      close(fds[0]);
      std::string err;
      try {
        fn();
      } catch (const std::exception& e) {
        err = e.what();
      }
      if (!err.empty() && write(fds[1], err.data(), err.size()) < 0) _exit(3);
      _exit(err.empty() ? 0 : 1);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~ChildRank() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
  }
  pid_t pid() const { return pid_; }
  // Waits up to `limit` for the child; returns "" when it exited cleanly, else why not.
  std::string join(std::chrono::milliseconds limit = 10s) {
    Deadline d = Clock::now() + limit;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > d) return "child did not finish in time";
      std::this_thread::sleep_for(2ms);
    }
    pid_ = -1;
    char buf[4096];
    ssize_t n = read(out_, buf, sizeof buf);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    return n > 0 ? std::string(buf, n) : "child exited with status " + std::to_string(status);
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

TEST_F(ShmTest, ProcessesExchangeBothWays) {
  const size_t bytes = 8u << 20;
  auto exchange = [&](int me) {
    auto t = make(me, 2);
    std::vector<uint8_t> out(bytes), in(bytes);
    fill(out, 77 + me);
    finish_all(*t, {t->irecv(1 - me, in.data(), bytes, fp_of(OpKind::allreduce, 0, bytes)),
                    t->isend(1 - me, out.data(), bytes, fp_of(OpKind::allreduce, 0, bytes))});
    if (first_mismatch(in, 77 + (1 - me)) >= 0) throw std::runtime_error("data differs");
  };
  ChildRank child([&] { exchange(1); });
  exchange(0);
  EXPECT_EQ(child.join(), "");
}

// Every message must wake a peer that fell asleep waiting for it, whichever way the sleep and
// the publish interleave (see shm::Fences). Each side pauses before answering, longer than the
// spin and yield phases, so the other is usually asleep on its doorbell when the message
// lands. A lost wake-up would leave the sleeper until its liveness check, set to 20 s here, so
// the exchange would blow its time limit. Both paths run: mailbox messages, and FIFO messages
// five times the FIFO's size (the sender also sleeps waiting for space the reader frees).
TEST_F(ShmTest, ASleepingPeerIsWokenByEveryMessage) {
  ScopedEnv check("WEFT_PEER_CHECK_MS", "20000");
  ScopedEnv ring("WEFT_SHM_RING_BYTES", "4096");
  Deadline end = Clock::now() + 8s;
  auto left = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()); };
  auto ping_pong = [&](int me) {
    auto t = make(me, 2);
    for (size_t bytes : {size_t{8}, size_t{20480}}) {
      std::vector<uint8_t> out(bytes), in(bytes);
      for (uint64_t i = 0; i < 150; ++i) {
        Fingerprint fp = fp_of(OpKind::send, i, bytes);
        if ((i + me) % 2 == 0) {
          std::this_thread::sleep_for(200us);
          fill(out, i);
          finish(*t, t->isend(1 - me, out.data(), bytes, fp), left());
        } else {
          finish(*t, t->irecv(1 - me, in.data(), bytes, fp), left());
          if (first_mismatch(in, i) >= 0)
            throw std::runtime_error("message " + std::to_string(i) + " differs");
        }
      }
    }
  };
  ChildRank child([&] { ping_pong(1); });
  EXPECT_NO_THROW(ping_pong(0));
  EXPECT_EQ(child.join(left() + 1s), "");
}

TEST_F(ShmTest, KilledPeerProcessFailsPendingRequestsWithPeerLost) {
  ScopedEnv check("WEFT_PEER_CHECK_MS", "50");
  ChildRank child([&] {
    auto t = make(1, 2);
    uint32_t v = 99;
    finish(*t, t->isend(0, &v, sizeof v, fp_of(OpKind::send, 0, 4, 0)));
    std::this_thread::sleep_for(30s);  // killed long before this
  });
  auto t = make(0, 2);
  uint32_t v = 0;
  finish(*t, t->irecv(1, &v, sizeof v, fp_of(OpKind::recv, 0, 4, 1)));
  EXPECT_EQ(v, 99u);
  // Pending when the peer dies: a receive, and a send too large to fit in its FIFO.
  std::vector<uint8_t> big(4u << 20);
  Request r = t->irecv(1, &v, sizeof v, fp_of(OpKind::recv, 1, 4, 1));
  Request s = t->isend(1, big.data(), big.size(), fp_of(OpKind::send, 2, big.size(), 1));
  ASSERT_EQ(kill(child.pid(), SIGKILL), 0);
  auto start = Clock::now();
  auto recv_err = error_of([&] { finish(*t, r); });
  auto send_err = error_of([&] { finish(*t, s); });
  EXPECT_LT(seconds_since(start), 1.0);
  ASSERT_TRUE(recv_err && send_err);
  std::string pid = std::to_string(child.pid());
  EXPECT_EQ(recv_err->code(), ErrorCode::PeerLost);
  EXPECT_NE(std::string(recv_err->what()).find("rank 1 lost: process " + pid + " exited"),
            std::string::npos)
      << recv_err->what();
  EXPECT_EQ(send_err->code(), ErrorCode::PeerLost);
  EXPECT_NE(std::string(send_err->what()).find("sending send #2"), std::string::npos)
      << send_err->what();
  EXPECT_EQ(shm_files_of_job(), 0);
}

}  // namespace
}  // namespace weft::comm
