// The TCP store: a real server on loopback and clients on threads of this process.
#include "comm/rendezvous/store_tcp.h"

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

namespace weft::comm {
namespace {

using namespace std::chrono_literals;

const std::string kToken = "store-test-token";

std::unique_ptr<TcpStore> client(int port, const std::string& token = kToken) {
  return TcpStore::connect("127.0.0.1", port, token, deadline_after(5s));
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

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

TEST(TcpStore, SetGetAddWaitAcrossThreads) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
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

TEST(TcpStore, GetSleepsUntilAnotherClientSets) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
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

TEST(TcpStore, ThreadsShareOneConnection) {
  // A get blocked on one thread must not hold up a set on another through the same client.
  TcpStoreServer server("127.0.0.1", 0, kToken);
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

TEST(TcpStore, GetTimesOutNamingTheKey) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
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

TEST(TcpStore, WaitTimesOutNamingOnlyTheMissingKeys) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
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

TEST(TcpStore, AddToTextIsAnError) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
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

TEST(TcpStore, StrangersAreRefusedAndLoggedWhileGoodClientsWork) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  auto good = client(server.port());
  testing::internal::CaptureStderr();
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
  int zeros = raw_connect(server.port());  // a plausible length, then nonsense
  char junk[16] = {12, 0, 0, 0};
  ASSERT_EQ(::send(zeros, junk, sizeof junk, 0), 16);
  EXPECT_TRUE(closed_by_server(zeros));
  ::close(zeros);
  good->set("still", "working");
  EXPECT_EQ(good->get("still", deadline_after(1s)), "working");
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "refused connection from 127.0.0.1:")) << log;
  EXPECT_TRUE(contains(log, "wrong job token")) << log;
  EXPECT_TRUE(contains(log, "not a weft store")) << log;
}

TEST(TcpStore, ServerGoneMidRequestIsUnavailable) {
  auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0, kToken);
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
    EXPECT_TRUE(contains(e.what(), "store at 127.0.0.1:" + std::to_string(port) + " is gone"))
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

TEST(TcpStore, ConnectWaitsForALateServer) {
  // Find a free port, then start the server on it a little after the client starts trying.
  int port;
  {
    TcpStoreServer probe("127.0.0.1", 0, kToken);
    port = probe.port();
  }
  std::unique_ptr<TcpStoreServer> server;
  std::thread starter([&] {
    std::this_thread::sleep_for(200ms);
    server = std::make_unique<TcpStoreServer>("127.0.0.1", port, kToken);
  });
  auto start = Clock::now();
  std::unique_ptr<TcpStore> store;
  EXPECT_NO_THROW(
      store = TcpStore::connect("127.0.0.1:" + std::to_string(port), kToken, deadline_after(5s)));
  starter.join();
  EXPECT_GE(seconds_since(start), 0.15);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->add("x", 2), 2);
  EXPECT_EQ(store->local_host(), "127.0.0.1");
}

TEST(TcpStore, ConnectGivesUpAtTheDeadline) {
  int port;
  {
    TcpStoreServer probe("127.0.0.1", 0, kToken);
    port = probe.port();
  }
  auto start = Clock::now();
  try {
    TcpStore::connect("127.0.0.1", port, kToken, deadline_after(300ms));
    FAIL() << "connected to nothing";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
    EXPECT_TRUE(contains(e.what(), "127.0.0.1:" + std::to_string(port))) << e.what();
  }
  EXPECT_LT(seconds_since(start), 1.5);
  try {
    TcpStore::connect("no-port-here", kToken, deadline_after(1s));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  }
}

TEST(TcpStore, ServerStopsPromptlyWithClientsConnected) {
  auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0, kToken);
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
  EXPECT_LT(seconds_since(start), 0.2);
  blocked.get();
  ::close(idle);
}

// A rank as the store sees it, spoken by hand so that it can vanish without leaving, as a
// process killed with SIGKILL does: hello, then join as `rank`.
int raw_member(int port, int rank) {
  auto frame = [](uint32_t id, uint8_t code, const std::vector<std::string>& parts) {
    std::string body(reinterpret_cast<const char*>(&id), 4);
    body.push_back(static_cast<char>(code));
    for (const auto& p : parts) {
      uint32_t n = static_cast<uint32_t>(p.size());
      body.append(reinterpret_cast<const char*>(&n), 4).append(p);
    }
    uint32_t len = static_cast<uint32_t>(body.size());
    return std::string(reinterpret_cast<const char*>(&len), 4) + body;
  };
  constexpr uint8_t kHello = 1, kJoin = 6;  // the codes in store_tcp.cc
  std::string hello =
      frame(1, kHello, {"weft-store-1", kToken}) + frame(2, kJoin, {std::to_string(rank), "4242"});
  int fd = raw_connect(port);
  EXPECT_EQ(::send(fd, hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
  char replies[2 * 9];  // two bare ok replies: [len][id][code]
  for (size_t got = 0; got < sizeof replies;) {
    ssize_t n = ::recv(fd, replies + got, sizeof replies - got, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return fd;
}

TEST(TcpStore, AMemberThatVanishesIsNamedToEveryWaiterAtOnce) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  store->set("here", "1");
  int member = raw_member(server.port(), 2);
  auto waiting = std::async(std::launch::async, [&] { store->get("never", deadline_after(20s)); });
  std::this_thread::sleep_for(100ms);
  auto start = Clock::now();
  testing::internal::CaptureStderr();
  ::close(member);  // the rank dies: no leave
  try {
    waiting.get();
    FAIL() << "a wait outlived the death of a member";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 2 (pid 4242)")) << e.what();
    EXPECT_TRUE(contains(e.what(), "store key 'never'")) << e.what();
  }
  EXPECT_LT(seconds_since(start), 1.0);
  EXPECT_TRUE(contains(testing::internal::GetCapturedStderr(), "rank 2 (pid 4242) lost"));
  // Later waits fail at once too; what is already there can still be read.
  EXPECT_THROW(store->wait({"here", "never"}, deadline_after(20s)), Error);
  EXPECT_LT(seconds_since(start), 1.0);
  EXPECT_EQ(store->get("here", deadline_after(1s)), "1");
  try {
    store->check_members();
    FAIL() << "check_members() did not report the lost rank";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 2 (pid 4242)")) << e.what();
  }
}

TEST(TcpStore, AMemberThatLeavesIsNotLost) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  auto store = client(server.port());
  client(server.port())->join_as(1);  // joins, then leaves as the store is destroyed
  int stranger = raw_connect(server.port());
  ::close(stranger);  // closing a connection that never joined says nothing about the job
  store->check_members();
  try {
    store->get("never", deadline_after(300ms));
    FAIL() << "get returned a key nobody set";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout) << e.what();
  }
}

TEST(TcpStore, TheLauncherCanPostTheDeathNoticeAndTheFirstOneStays) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
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
  store->set(kRankLostKey, "rank 0 says so");  // a client's notice comes too late as well
  try {
    store->check_members();
    FAIL() << "check_members() did not report the lost rank";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "rank 3 (pid 77)")) << e.what();
  }
}

// An NCCL group polls its abort channel while it waits; a rank killed without a word reaches it
// through the job's death notice.
TEST(TcpStore, TheAbortChannelCarriesTheDeathNotice) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
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
