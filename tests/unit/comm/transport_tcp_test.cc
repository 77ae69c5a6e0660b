// The TCP transport: ranks as threads of this process, meeting through a real Coordinator on
// loopback. Each test uses its own key prefix so set-ups never see each other's addresses.
#include "comm/transport/tcp/transport_tcp.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/rendezvous/coordinator.h"
#include "comm/transport.h"
#include "comm/transport_setup.h"
#include "runtime/error.h"
#include "tests/support/text.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;
using Request = Transport::Request;

const std::string kToken = "transport-test-token";
const std::string kJob = "tcp-test-job";

using weft::testing::contains;

Fingerprint fp(uint64_t seq, uint64_t count) {
  return Fingerprint{seq, OpKind::allreduce, DType::u8, ReduceOp::sum, -1, count};
}

// What a rank's body ended with.
struct Outcome {
  bool ok = true;
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  double seconds = 0;  // from the start of the body to its end
};

// Polls every request to completion, as an algorithm waiting on a send and a recv does.
void wait_all(Transport& t, std::vector<Request> reqs, Deadline deadline) {
  while (!reqs.empty()) {
    std::erase_if(reqs, [&](Request r) { return t.test(r); });
    if (reqs.empty()) return;
    if (Clock::now() >= deadline) throw Error(ErrorCode::Timeout, "test: wait_all timed out");
    t.wait_for_progress(deadline);
  }
}

// Byte i of message `round` from rank `src`: differs between ranks, rounds and positions.
uint8_t pattern(int src, int round, size_t i) {
  return static_cast<uint8_t>(i * 131 + i / 251 + src * 17 + round * 59 + 1);
}

class TcpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Coordinator>("127.0.0.1", 0, kToken);
    test_name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    prefix_ = test_name_;
  }

  std::shared_ptr<Store> rank_store() {
    std::shared_ptr<CoordinatorStore> base =
        CoordinatorStore::connect("127.0.0.1", server_->port(), kToken, deadline_after(5s));
    return std::make_shared<PrefixStore>(prefix_, base);
  }

  TransportSetup setup(Store* store, int rank, int size, Deadline deadline) {
    TransportSetup s;
    s.store = store;
    s.rank = rank;
    s.size = size;
    s.job_id = kJob;
    s.token = kToken;
    s.group_tag = "world";
    s.host = "127.0.0.1";
    s.deadline = deadline;
    return s;
  }

  // Sets up `n` ranks on their own threads (set-up is collective), then runs body(rank, t) on
  // each; a body may reset `t` to simulate a rank going away. Every wait inside has a deadline,
  // so the threads always end.
  std::vector<Outcome> run_ranks(int n,
                                 const std::function<void(int, std::unique_ptr<Transport>&)>& body,
                                 std::chrono::milliseconds setup_limit = 10s,
                                 const std::function<void(int)>& before_setup = nullptr) {
    std::vector<Outcome> out(n);
    // A fresh key space per group: an address left by an earlier group must not be dialled.
    prefix_ = std::string(test_name_) + "/" + std::to_string(groups_++);
    // Ranks keep their transports until every body has ended, as processes that report an
    // error do not vanish at once: a test sees the failure it provokes, not a rank's exit.
    std::latch finished(n);
    std::vector<std::thread> threads;
    for (int r = 0; r < n; r++) {
      threads.emplace_back([&, r] {
        Clock::time_point start = Clock::now();
        std::unique_ptr<Transport> t;
        try {
          if (before_setup) before_setup(r);
          auto store = rank_store();
          t = make_tcp_transport(setup(store.get(), r, n, deadline_after(setup_limit)));
          EXPECT_EQ(t->rank(), r);
          EXPECT_EQ(t->size(), n);
          EXPECT_STREQ(t->name(), "tcp");
          start = Clock::now();
          body(r, t);
        } catch (const Error& e) {
          out[r] = Outcome{false, e.code(), e.what(), 0};
        } catch (const std::exception& e) {
          out[r] = Outcome{false, ErrorCode::Internal, e.what(), 0};
        }
        out[r].seconds = seconds_since(start);
        finished.arrive_and_wait();
      });
    }
    for (auto& t : threads) t.join();
    return out;
  }

  // Every rank sends `rounds` messages of `bytes` to its right neighbour while receiving as many
  // from its left, all posted at once, and checks each byte.
  void ring(int n, size_t bytes, int rounds) {
    auto out = run_ranks(n, [&](int r, std::unique_ptr<Transport>& t) {
      int right = (r + 1) % n, left = (r + n - 1) % n;
      std::vector<std::vector<uint8_t>> sent(rounds), got(rounds);
      std::vector<Request> reqs;
      for (int k = 0; k < rounds; k++) {
        sent[k].resize(bytes);
        for (size_t i = 0; i < bytes; i++) sent[k][i] = pattern(r, k, i);
        got[k].assign(bytes, 0);
        reqs.push_back(t->irecv(left, got[k].data(), bytes, fp(k, bytes)));
        reqs.push_back(t->isend(right, sent[k].data(), bytes, fp(k, bytes)));
      }
      wait_all(*t, reqs, deadline_after(20s));
      for (int k = 0; k < rounds; k++)
        for (size_t i = 0; i < bytes; i++)
          if (got[k][i] != pattern(left, k, i))
            throw Error(ErrorCode::Corrupt,
                        "round " + std::to_string(k) + " byte " + std::to_string(i) + " differs");
    });
    for (int r = 0; r < n; r++) EXPECT_TRUE(out[r].ok) << "rank " << r << ": " << out[r].message;
  }

  std::unique_ptr<Coordinator> server_;
  const char* test_name_ = "";
  std::string prefix_;
  int groups_ = 0;
};

TEST_F(TcpTransportTest, RingOfTwoSmallAndOddSizes) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{1000003}}) ring(2, bytes, 3);
}

TEST_F(TcpTransportTest, RingOfThree) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{1000003}}) ring(3, bytes, 2);
}

TEST_F(TcpTransportTest, RingOfFour) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{1000003}}) ring(4, bytes, 2);
}

TEST_F(TcpTransportTest, RingOfTwo64MiBFullDuplex) { ring(2, size_t{64} << 20, 1); }

TEST_F(TcpTransportTest, ManySmallMessagesKeepTheirOrder) {
  constexpr int kMessages = 2000;
  auto out = run_ranks(2, [&](int r, std::unique_ptr<Transport>& t) {
    int peer = 1 - r;
    std::vector<std::vector<uint8_t>> sent(kMessages), got(kMessages);
    std::vector<Request> reqs;
    for (int k = 0; k < kMessages; k++) {
      size_t bytes = static_cast<size_t>(k % 97);
      sent[k].resize(bytes);
      for (size_t i = 0; i < bytes; i++) sent[k][i] = pattern(r, k, i);
      got[k].assign(bytes, 0);
      reqs.push_back(t->isend(peer, sent[k].data(), bytes, fp(k, bytes)));
      reqs.push_back(t->irecv(peer, got[k].data(), bytes, fp(k, bytes)));
    }
    wait_all(*t, reqs, deadline_after(10s));
    for (int k = 0; k < kMessages; k++)
      for (size_t i = 0; i < got[k].size(); i++)
        if (got[k][i] != pattern(peer, k, i)) throw Error(ErrorCode::Corrupt, "bytes differ");
  });
  for (auto& o : out) EXPECT_TRUE(o.ok) << o.message;
}

TEST_F(TcpTransportTest, MessageSentBeforeItsRecvIsPostedWaits) {
  auto out = run_ranks(2, [&](int r, std::unique_ptr<Transport>& t) {
    std::vector<uint8_t> a(300000), b(5);
    for (size_t i = 0; i < a.size(); i++) a[i] = pattern(0, 0, i);
    if (r == 0) {
      wait_all(*t,
               {t->isend(1, a.data(), a.size(), fp(1, a.size())),
                t->isend(1, b.data(), b.size(), fp(2, b.size()))},
               deadline_after(5s));
      return;
    }
    std::this_thread::sleep_for(200ms);  // rank 0's bytes sit in this rank's socket meanwhile
    std::vector<uint8_t> got(a.size());
    comm::wait(*t, t->irecv(0, got.data(), got.size(), fp(1, got.size())), deadline_after(5s), 0,
               fp(1, got.size()));
    EXPECT_EQ(got, a);
    comm::wait(*t, t->irecv(0, b.data(), b.size(), fp(2, b.size())), deadline_after(5s), 0,
               fp(2, b.size()));
  });
  for (auto& o : out) EXPECT_TRUE(o.ok) << o.message;
}

TEST_F(TcpTransportTest, SizeMismatchFailsTheReceiverAndAbortsThePeers) {
  auto out = run_ranks(2, [&](int r, std::unique_ptr<Transport>& t) {
    std::vector<uint8_t> buf(200);
    if (r == 0) {
      comm::wait(*t, t->isend(1, buf.data(), 100, fp(5, 100)), deadline_after(5s), 1, fp(5, 100));
      // The receiver's abort reaches this rank while it waits for an answer that never comes.
      comm::wait(*t, t->irecv(1, buf.data(), 8, fp(6, 8)), deadline_after(5s), 1, fp(6, 8));
    } else {
      comm::wait(*t, t->irecv(0, buf.data(), 200, fp(5, 100)), deadline_after(5s), 0, fp(5, 100));
    }
  });
  ASSERT_FALSE(out[1].ok);
  EXPECT_EQ(out[1].code, ErrorCode::InvalidArgument);
  EXPECT_EQ(out[1].message.rfind("InvalidArgument: collective mismatch: rank 0 called", 0), 0)
      << out[1].message;
  EXPECT_TRUE(contains(out[1].message, "sending 100 bytes")) << out[1].message;
  EXPECT_TRUE(contains(out[1].message, "expecting 200 bytes")) << out[1].message;
  // The peer fails with the mismatch's own code: ranks that disagree all fail InvalidArgument.
  ASSERT_FALSE(out[0].ok);
  EXPECT_EQ(out[0].code, ErrorCode::InvalidArgument);
  EXPECT_TRUE(contains(out[0].message, "rank 1 aborted")) << out[0].message;
  EXPECT_TRUE(contains(out[0].message, "expecting 200 bytes")) << out[0].message;
  EXPECT_LT(out[0].seconds, 2.0);
}

TEST_F(TcpTransportTest, FingerprintMismatchIsInvalidArgument) {
  auto out = run_ranks(2, [&](int r, std::unique_ptr<Transport>& t) {
    std::vector<uint8_t> buf(64);
    Fingerprint mine = fp(3, 64);
    if (r == 1) mine.op = OpKind::broadcast;
    Request q = r == 0 ? t->isend(1, buf.data(), 64, mine) : t->irecv(0, buf.data(), 64, mine);
    comm::wait(*t, q, deadline_after(5s), 1 - r, mine);
  });
  EXPECT_TRUE(out[0].ok) << out[0].message;  // its send completed before the mismatch was seen
  ASSERT_FALSE(out[1].ok);
  EXPECT_EQ(out[1].code, ErrorCode::InvalidArgument);
  EXPECT_TRUE(contains(out[1].message, "allreduce #3")) << out[1].message;
  EXPECT_TRUE(contains(out[1].message, "broadcast #3")) << out[1].message;
}

TEST_F(TcpTransportTest, ClosedPeerIsLostWithinSecondsAndOthersCarryOn) {
  auto out = run_ranks(3, [&](int r, std::unique_ptr<Transport>& t) {
    std::vector<uint8_t> buf(1000, 7);
    if (r == 2) {
      std::this_thread::sleep_for(200ms);
      t.reset();  // as if the process died: its sockets close
      return;
    }
    if (r == 1) {
      Request lost = t->irecv(2, buf.data(), buf.size(), fp(1, 1000));
      try {
        comm::wait(*t, lost, deadline_after(10s), 2, fp(1, 1000));
        throw Error(ErrorCode::Internal, "receive from a dead rank completed");
      } catch (const Error& e) {
        if (e.code() != ErrorCode::PeerLost) throw;
        if (!contains(e.what(), "rank 2 lost") || !contains(e.what(), "rank 1 was receiving"))
          throw Error(ErrorCode::Internal, std::string("unclear message: ") + e.what());
      }
      // A later request to the lost rank fails at once; the healthy rank still works.
      try {
        comm::wait(*t, t->isend(2, buf.data(), 10, fp(2, 10)), deadline_after(1s), 2, fp(2, 10));
        throw Error(ErrorCode::Internal, "send to a dead rank completed");
      } catch (const Error& e) {
        if (e.code() != ErrorCode::PeerLost) throw;
      }
    }
    int peer = 1 - r;
    std::vector<uint8_t> got(1000, 0);
    wait_all(*t,
             {t->isend(peer, buf.data(), buf.size(), fp(9, 1000)),
              t->irecv(peer, got.data(), got.size(), fp(9, 1000))},
             deadline_after(5s));
    if (got != buf) throw Error(ErrorCode::Corrupt, "bytes differ");
  });
  EXPECT_TRUE(out[0].ok) << out[0].message;
  EXPECT_TRUE(out[1].ok) << out[1].message;
  EXPECT_LT(out[1].seconds, 2.0);
}

TEST_F(TcpTransportTest, AbortFailsThePeersWithTheReason) {
  auto out = run_ranks(3, [&](int r, std::unique_ptr<Transport>& t) {
    std::vector<uint8_t> buf(100);
    if (r == 0) {
      std::this_thread::sleep_for(150ms);
      t->abort("the optimizer diverged");
      t->abort("a second reason is ignored");  // idempotent
      comm::wait(*t, t->isend(1, buf.data(), 1, fp(1, 1)), deadline_after(1s), 1, fp(1, 1));
      return;
    }
    // Rank 1 waits on rank 0; rank 2 waits on rank 1, which never sends: it hears of the abort
    // from rank 0 all the same.
    int from = r == 1 ? 0 : 1;
    comm::wait(*t, t->irecv(from, buf.data(), buf.size(), fp(1, 100)), deadline_after(10s), from,
               fp(1, 100));
  });
  ASSERT_FALSE(out[0].ok);
  EXPECT_EQ(out[0].code, ErrorCode::Aborted);
  EXPECT_TRUE(contains(out[0].message, "the optimizer diverged")) << out[0].message;
  EXPECT_FALSE(contains(out[0].message, "second reason")) << out[0].message;
  for (int r : {1, 2}) {
    ASSERT_FALSE(out[r].ok) << "rank " << r;
    EXPECT_EQ(out[r].code, ErrorCode::Aborted) << out[r].message;
    EXPECT_TRUE(contains(out[r].message, "rank 0 aborted: the optimizer diverged"))
        << out[r].message;
    EXPECT_LT(out[r].seconds, 2.0);
  }
}

TEST_F(TcpTransportTest, AbortFromAnotherThreadWakesASleepingWait) {
  auto out = run_ranks(2, [&](int r, std::unique_ptr<Transport>& t) {
    std::vector<uint8_t> buf(100);
    if (r == 1) {  // waits for rank 0, which never sends: only its own abort ends the wait
      std::thread aborter([&] {
        std::this_thread::sleep_for(150ms);
        t->abort("stopped by the watchdog");
      });
      try {
        comm::wait(*t, t->irecv(0, buf.data(), buf.size(), fp(1, 100)), deadline_after(10s), 0,
                   fp(1, 100));
      } catch (...) {
        aborter.join();
        throw;
      }
      aborter.join();
      return;
    }
    comm::wait(*t, t->irecv(1, buf.data(), buf.size(), fp(1, 100)), deadline_after(10s), 1,
               fp(1, 100));
  });
  ASSERT_FALSE(out[1].ok);
  EXPECT_EQ(out[1].code, ErrorCode::Aborted);
  EXPECT_TRUE(contains(out[1].message, "stopped by the watchdog")) << out[1].message;
  EXPECT_LT(out[1].seconds, 1.0);
  ASSERT_FALSE(out[0].ok);
  EXPECT_TRUE(contains(out[0].message, "rank 1 aborted: stopped by the watchdog"))
      << out[0].message;
}

// A hello with the right shape but the wrong token, as transport_tcp.cc lays it out.
std::string forged_hello(const std::string& token) {
  struct {
    uint32_t magic = 0x68656c6f, version = 1;
    int32_t rank = 1, size = 2;
    uint32_t job_len, token_len, group_len;
  } h;
  h.job_len = static_cast<uint32_t>(kJob.size());
  h.token_len = static_cast<uint32_t>(token.size());
  h.group_len = 5;
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + kJob + token + "world";
}

int raw_connect(const std::string& address) {
  auto colon = address.rfind(':');
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

TEST_F(TcpTransportTest, StrangersDuringSetUpAreRefusedAndRanksStillConnect) {
  std::vector<int> strangers;
  ::testing::internal::CaptureStderr();
  auto out = run_ranks(
      2,
      [&](int r, std::unique_ptr<Transport>& t) {
        std::vector<uint8_t> buf(10, static_cast<uint8_t>(r)), got(10);
        wait_all(*t,
                 {t->isend(1 - r, buf.data(), 10, fp(1, 10)),
                  t->irecv(1 - r, got.data(), 10, fp(1, 10))},
                 deadline_after(5s));
        if (got != std::vector<uint8_t>(10, static_cast<uint8_t>(1 - r)))
          throw Error(ErrorCode::Corrupt, "bytes differ");
      },
      10s,
      [&](int r) {
        if (r != 1) return;
        // Before rank 1 dials rank 0, three strangers reach rank 0's port: one sends garbage,
        // one a hello with the wrong token, one nothing at all.
        auto store = rank_store();
        std::string address = store->get("tcp/addr/0", deadline_after(5s));
        for (const std::string& payload : {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                                           forged_hello("not-the-token"), std::string()}) {
          int fd = raw_connect(address);
          if (!payload.empty()) {
            EXPECT_GT(::send(fd, payload.data(), payload.size(), 0), 0);
          }
          strangers.push_back(fd);
        }
        std::this_thread::sleep_for(150ms);
      });
  std::string log = ::testing::internal::GetCapturedStderr();
  for (int fd : strangers) ::close(fd);
  for (auto& o : out) EXPECT_TRUE(o.ok) << o.message;
  EXPECT_TRUE(contains(log, "refused connection from 127.0.0.1:")) << log;
  EXPECT_TRUE(contains(log, "wrong job token")) << log;
  EXPECT_TRUE(contains(log, "not a weft peer")) << log;
}

TEST_F(TcpTransportTest, SetUpTimesOutNamingTheMissingRank) {
  auto store = rank_store();
  auto start = Clock::now();
  try {
    make_tcp_transport(setup(store.get(), 0, 3, deadline_after(300ms)));
    FAIL() << "set-up finished without its peers";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout);
    EXPECT_TRUE(contains(e.what(), "rank(s) 1, 2")) << e.what();
    EXPECT_TRUE(contains(e.what(), "may not have started")) << e.what();
  }
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST_F(TcpTransportTest, WaitWithAPastDeadlineTimesOutAndIdleWaitsSleep) {
  auto out = run_ranks(2, [&](int r, std::unique_ptr<Transport>& t) {
    if (r == 1) return;  // its connection stays open (run_ranks) while rank 0 waits
    std::vector<uint8_t> buf(8);
    Request q = t->irecv(1, buf.data(), 8, fp(1, 8));
    try {
      comm::wait(*t, q, Clock::now() - 1ms, 1, fp(1, 8));
      throw Error(ErrorCode::Internal, "wait with a past deadline returned");
    } catch (const Error& e) {
      if (e.code() != ErrorCode::Timeout) throw;
    }
    // Nothing arrives: wait_for_progress must sleep (poll), not spin.
    timespec cpu0, cpu1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
    Clock::time_point start = Clock::now();
    Deadline until = start + 300ms;
    while (Clock::now() < until && !t->test(q)) t->wait_for_progress(until);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
    double cpu = (cpu1.tv_sec - cpu0.tv_sec) + (cpu1.tv_nsec - cpu0.tv_nsec) * 1e-9;
    EXPECT_GE(seconds_since(start), 0.29);
    EXPECT_LT(cpu, 0.05) << "an idle wait burned CPU";
  });
  EXPECT_TRUE(out[0].ok) << out[0].message;
  EXPECT_TRUE(out[1].ok) << out[1].message;
}

TEST_F(TcpTransportTest, GroupOfOneNeedsNoStore) {
  TransportSetup s = setup(nullptr, 0, 1, deadline_after(1s));
  auto t = make_tcp_transport(s);
  EXPECT_EQ(t->size(), 1);
  char b = 0;
  EXPECT_THROW(t->isend(0, &b, 1, fp(1, 1)), Error);
  t->abort("nothing to tell");
}

TEST_F(TcpTransportTest, BadArgumentsAndStaleRequests) {
  auto out = run_ranks(2, [&](int r, std::unique_ptr<Transport>& t) {
    char b = 0;
    EXPECT_THROW(t->isend(r, &b, 1, fp(1, 1)), Error);  // itself
    EXPECT_THROW(t->irecv(5, &b, 1, fp(1, 1)), Error);
    Request q = r == 0 ? t->isend(1, &b, 1, fp(1, 1)) : t->irecv(0, &b, 1, fp(1, 1));
    comm::wait(*t, q, deadline_after(5s), 1 - r, fp(1, 1));
    EXPECT_THROW(t->test(q), Error);  // retired
  });
  for (auto& o : out) EXPECT_TRUE(o.ok) << o.message;
}

}  // namespace
}  // namespace weft::comm
