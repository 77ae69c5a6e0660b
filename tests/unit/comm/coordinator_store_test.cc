// The coordinator as the Store ranks see: a real coordinator on loopback and clients on threads
// of this process. (coordinator_service_test.cc speaks its protocol by hand.)
#include "comm/rendezvous/coordinator.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "comm/rendezvous/store_abort_channel.h"
#include "runtime/error.h"
#include "tests/support/text.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;

const std::string kToken = "store-test-token";

std::unique_ptr<CoordinatorStore> client(int port, const std::string& token = kToken) {
  return CoordinatorStore::connect("127.0.0.1", port, token, deadline_after(5s));
}

using weft::testing::contains;

// A raw loopback connection, for clients that do not speak the protocol.
int raw_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{5, 0};  // the test must not hang if the server fails to close
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// True when the server closed `fd` (read returns end of stream) rather than leaving it open.
bool closed_by_server(int fd) {
  char buf[256];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

TEST(CoordinatorStore, SetGetAddWaitAcrossThreads) {
  Coordinator server("127.0.0.1", 0, kToken);
  constexpr int kThreads = 4, kAdds = 50;
  std::vector<std::future<std::string>> results;
  for (int t = 0; t < kThreads; t++) {
    results.push_back(std::async(std::launch::async, [&, t] {
      auto store = client(server.port());
      for (int i = 0; i < kAdds; i++) store->add("counter", 1);
      store->set("key/" + std::to_string(t), "value-" + std::to_string(t));
      std::vector<std::string> keys;
      for (int u = 0; u < kThreads; u++) keys.push_back("key/" + std::to_string(u));
      store->wait(keys, deadline_after(10s));
      std::string seen;
      for (const auto& k : keys) seen += store->get(k, deadline_after(1s)) + ";";
      return seen;
    }));
  }
  for (auto& r : results) EXPECT_EQ(r.get(), "value-0;value-1;value-2;value-3;");
  auto store = client(server.port());
  EXPECT_EQ(store->add("counter", 0), kThreads * kAdds);
  EXPECT_EQ(store->add("counter", -5), kThreads * kAdds - 5);
  EXPECT_EQ(store->add("fresh", 7), 7);
  store->set("key/0", "overwritten");
  EXPECT_EQ(store->get("key/0", deadline_after(1s)), "overwritten");
  std::string binary("a\0b\xff", 4);
  store->set("binary", binary);
  EXPECT_EQ(store->get("binary", deadline_after(1s)), binary);
}

TEST(CoordinatorStore, GetSleepsUntilAnotherClientSets) {
  Coordinator server("127.0.0.1", 0, kToken);
  auto waiter = client(server.port());
  auto setter = client(server.port());
  auto start = Clock::now();
  auto got =
      std::async(std::launch::async, [&] { return waiter->get("late", deadline_after(5s)); });
  std::this_thread::sleep_for(150ms);
  setter->set("late", "here");
  EXPECT_EQ(got.get(), "here");
  EXPECT_GE(seconds_since(start), 0.14);
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST(CoordinatorStore, ThreadsShareOneConnection) {
  // A get blocked on one thread must not hold up a set on another through the same client.
  Coordinator server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  std::vector<std::future<std::string>> gets;
  for (int i = 0; i < 3; i++)
    gets.push_back(std::async(std::launch::async, [&, i] {
      return store->get("shared/" + std::to_string(i), deadline_after(5s));
    }));
  std::this_thread::sleep_for(50ms);
  for (int i = 2; i >= 0; i--) store->set("shared/" + std::to_string(i), std::to_string(i * 10));
  for (int i = 0; i < 3; i++) EXPECT_EQ(gets[i].get(), std::to_string(i * 10));
  EXPECT_EQ(store->add("n", 3), 3);
}

TEST(CoordinatorStore, GetTimesOutNamingTheKey) {
  Coordinator server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  auto start = Clock::now();
  try {
    store->get("rank/3/address", deadline_after(300ms));
    FAIL() << "get of a missing key returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout);
    EXPECT_TRUE(contains(e.what(), "'rank/3/address'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "may not have started")) << e.what();
  }
  EXPECT_GE(seconds_since(start), 0.29);
  EXPECT_LT(seconds_since(start), 2.0);
  // The connection is still good after a timeout.
  store->set("a", "1");
  EXPECT_EQ(store->get("a", deadline_after(1s)), "1");
}

TEST(CoordinatorStore, WaitTimesOutNamingOnlyTheMissingKeys) {
  Coordinator server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  store->set("present", "x");
  try {
    store->wait({"present", "absent/1", "absent/2"}, deadline_after(200ms));
    FAIL() << "wait for missing keys returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout);
    EXPECT_TRUE(contains(e.what(), "'absent/1', 'absent/2'")) << e.what();
    EXPECT_FALSE(contains(e.what(), "present")) << e.what();
  }
  EXPECT_NO_THROW(store->wait({"present"}, deadline_after(1s)));
  EXPECT_NO_THROW(store->wait({}, Clock::now()));
}

TEST(CoordinatorStore, AddToTextIsAnError) {
  Coordinator server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  store->set("text", "hello");
  try {
    store->add("text", 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_TRUE(contains(e.what(), "not an integer")) << e.what();
  }
  EXPECT_EQ(store->get("text", deadline_after(1s)), "hello");
}

TEST(CoordinatorStore, StrangersAreRefusedAndLoggedWhileGoodClientsWork) {
  Coordinator server("127.0.0.1", 0, kToken);
  auto good = client(server.port());
  ::testing::internal::CaptureStderr();
  try {
    client(server.port(), "wrong-token");
    ADD_FAILURE() << "a client with the wrong token was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
    EXPECT_TRUE(contains(e.what(), "wrong job token")) << e.what();
    EXPECT_TRUE(contains(e.what(), "WEFT_TOKEN")) << e.what();
  }
  int http = raw_connect(server.port());
  std::string request = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(::send(http, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  EXPECT_TRUE(closed_by_server(http));
  ::close(http);
  good->set("still", "working");
  EXPECT_EQ(good->get("still", deadline_after(1s)), "working");
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "coordinator refused a request from ipv4:127.0.0.1:")) << log;
  EXPECT_TRUE(contains(log, "wrong job token")) << log;
}

TEST(CoordinatorStore, ServerGoneMidRequestIsUnavailable) {
  auto server = std::make_unique<Coordinator>("127.0.0.1", 0, kToken);
  int port = server->port();
  auto store = client(port);
  auto pending = std::async(std::launch::async, [&] { store->get("never", deadline_after(10s)); });
  std::this_thread::sleep_for(100ms);
  auto start = Clock::now();
  server.reset();  // stops within its bound, closing every connection
  EXPECT_LT(seconds_since(start), 0.5);
  try {
    pending.get();
    FAIL() << "get returned after the server went away";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
    EXPECT_TRUE(contains(e.what(), "coordinator at 127.0.0.1:" + std::to_string(port) + " is gone"))
        << e.what();
  }
  EXPECT_LT(seconds_since(start), 1.0);
  try {
    store->set("after", "x");
    FAIL() << "set worked after the server went away";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
  }
}

TEST(CoordinatorStore, ConnectWaitsForALateServer) {
  // Find a free port, then start the server on it a little after the client starts trying.
  int port;
  {
    Coordinator probe("127.0.0.1", 0, kToken);
    port = probe.port();
  }
  std::unique_ptr<Coordinator> server;
  std::thread starter([&] {
    std::this_thread::sleep_for(200ms);
    server = std::make_unique<Coordinator>("127.0.0.1", port, kToken);
  });
  auto start = Clock::now();
  std::unique_ptr<CoordinatorStore> store;
  EXPECT_NO_THROW(
      store = CoordinatorStore::connect("127.0.0.1:" + std::to_string(port), kToken, deadline_after(5s)));
  starter.join();
  EXPECT_GE(seconds_since(start), 0.15);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->add("x", 2), 2);
  EXPECT_EQ(store->local_host(), "127.0.0.1");
}

TEST(CoordinatorStore, ConnectGivesUpAtTheDeadline) {
  int port;
  {
    Coordinator probe("127.0.0.1", 0, kToken);
    port = probe.port();
  }
  auto start = Clock::now();
  try {
    CoordinatorStore::connect("127.0.0.1", port, kToken, deadline_after(300ms));
    FAIL() << "connected to nothing";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
    EXPECT_TRUE(contains(e.what(), "127.0.0.1:" + std::to_string(port))) << e.what();
  }
  EXPECT_LT(seconds_since(start), 1.5);
  try {
    CoordinatorStore::connect("no-port-here", kToken, deadline_after(1s));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  }
}

TEST(CoordinatorStore, ServerStopsPromptlyWithClientsConnected) {
  auto server = std::make_unique<Coordinator>("127.0.0.1", 0, kToken);
  auto a = client(server->port());
  auto b = client(server->port());
  int idle = raw_connect(server->port());
  auto blocked = std::async(std::launch::async, [&] {
    try {
      a->wait({"never"}, deadline_after(10s));
    } catch (const Error&) {
    }
  });
  std::this_thread::sleep_for(50ms);
  auto start = Clock::now();
  server.reset();
  EXPECT_LT(seconds_since(start), 0.5);
  blocked.get();
  ::close(idle);
}

TEST(CoordinatorStore, AMemberThatLeavesIsNotLost) {
  Coordinator server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  client(server.port())->join_as(1, 4);  // joins, then leaves as the store is destroyed
  int stranger = raw_connect(server.port());
  ::close(stranger);  // closing a connection that never joined says nothing about the job
  std::this_thread::sleep_for(100ms);
  store->check_members();
  try {
    store->get("never", deadline_after(300ms));
    FAIL() << "get returned a key nobody set";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout) << e.what();
  }
}

TEST(CoordinatorStore, TheLauncherCanPostTheDeathNoticeAndTheFirstOneStays) {
  Coordinator server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  auto waiting =
      std::async(std::launch::async, [&] { store->wait({"never"}, deadline_after(20s)); });
  std::this_thread::sleep_for(100ms);
  auto start = Clock::now();
  server.post_rank_lost("rank 3 (pid 77) was killed by signal 9");
  server.post_rank_lost("rank 1 (pid 78) was killed by signal 15");
  try {
    waiting.get();
    FAIL() << "a wait outlived the launcher's death notice";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 3 (pid 77) was killed by signal 9")) << e.what();
  }
  EXPECT_LT(seconds_since(start), 1.0);
  EXPECT_EQ(server.generation(), 2u);  // one loss ends one generation, not two
  try {
    store->check_members();
    FAIL() << "check_members() did not report the lost rank";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 3 (pid 77)")) << e.what();
  }
  // A client of the new generation asking later hears the first notice, not the second.
  auto late = client(server.port());
  try {
    late->check_members();
    FAIL() << "check_members() did not report the lost rank";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "rank 3 (pid 77)")) << e.what();
  }
}

// An NCCL group polls its abort channel while it waits; a rank killed without a word reaches it
// through the job's death notice.
TEST(CoordinatorStore, TheAbortChannelCarriesTheDeathNotice) {
  Coordinator server("127.0.0.1", 0, kToken);
  std::shared_ptr<Store> store = client(server.port());
  StoreAbortChannel channel(std::make_shared<PrefixStore>("world", store), 0);
  EXPECT_EQ(channel.poll(), "");
  server.post_rank_lost("rank 3 (pid 77) was killed by signal 9");
  std::string heard;
  for (auto give_up = Clock::now() + 2s; heard.empty() && Clock::now() < give_up;) {
    std::this_thread::sleep_for(StoreAbortChannel::kPollInterval);
    heard = channel.poll();
  }
  EXPECT_TRUE(contains(heard, "PeerLost: rank 3 (pid 77) was killed by signal 9")) << heard;
}

}  // namespace
}  // namespace weft::comm

namespace weft::comm {
namespace {

// Node 0's weftrun keeps its coordinator while the ranks of other nodes finish: it waits for
// every joined rank to leave, and stops waiting at a loss.
TEST(CoordinatorStore, TheServerCanWaitUntilEveryRankHasLeft) {
  Coordinator server("127.0.0.1", 0, kToken);
  EXPECT_TRUE(server.wait_until_all_left(deadline_after(10ms)));  // nobody joined
  auto a = client(server.port());
  auto b = client(server.port());
  a->join_as(0, 2);
  b->join_as(1, 2);
  EXPECT_FALSE(server.wait_until_all_left(deadline_after(100ms)));
  a.reset();  // leaves
  EXPECT_FALSE(server.wait_until_all_left(deadline_after(100ms)));
  auto leave_later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(200ms);
    b.reset();
  });
  auto start = Clock::now();
  EXPECT_TRUE(server.wait_until_all_left(deadline_after(10s)));
  EXPECT_LT(Clock::now() - start, 5s);
  leave_later.get();

  Coordinator lossy("127.0.0.1", 0, kToken);
  auto c = client(lossy.port());
  c->join_as(0, 2);
  lossy.post_rank_lost("rank 1 (pid 7) was killed by signal 9");
  EXPECT_FALSE(lossy.wait_until_all_left(deadline_after(10s)));  // at once: a loss ends it
}

}  // namespace
}  // namespace weft::comm

namespace weft::comm {
namespace {

// A weftrun on another machine than the coordinator posts its rank's death through a client;
// the ranks hear it as from a launcher beside the coordinator. With the coordinator gone, the
// post fails by its deadline instead of holding the launcher.
TEST(CoordinatorStore, AClientPostsTheDeathNoticeWithinItsDeadline) {
  auto server = std::make_unique<Coordinator>("127.0.0.1", 0, kToken);
  auto launcher = client(server->port());
  auto rank = client(server->port());
  launcher->post_rank_lost("rank 3 (pid 77) was killed by signal 9", deadline_after(2s));
  try {
    rank->get("never-set", deadline_after(5s));
    ADD_FAILURE() << "the notice was not heard";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 3 (pid 77) was killed by signal 9")) << e.what();
  }
  server.reset();
  auto start = Clock::now();
  EXPECT_THROW(launcher->post_rank_lost("rank 2 died", deadline_after(500ms)), Error);
  EXPECT_LT(Clock::now() - start, 3s);
}

// What a launcher on another machine asks to notice losing the coordinator: it answers in every
// generation, a stale one included, and once it is gone the question fails fast, well within its
// deadline.
TEST(CoordinatorStore, AnswersSaysWhetherTheCoordinatorIsThere) {
  auto server = std::make_unique<Coordinator>("127.0.0.1", 0, kToken);
  auto launcher = client(server->port());
  EXPECT_TRUE(launcher->answers(deadline_after(2s)));
  server->post_rank_lost("rank 1 (pid 12) was killed by signal 9");
  server->begin_generation();
  EXPECT_TRUE(launcher->answers(deadline_after(2s)));  // the launcher's generation is over
  server.reset();
  auto start = Clock::now();
  EXPECT_FALSE(launcher->answers(deadline_after(5s)));
  EXPECT_LT(Clock::now() - start, 3s);
}

}  // namespace
}  // namespace weft::comm
