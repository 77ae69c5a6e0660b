// The coordinator's service spoken by hand (proto/coordinator.proto): what a stranger, a stale
// or confused client, or random bytes get; members that vanish or fall silent.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>

#include "comm/rendezvous/coordinator.h"
#include "proto/coordinator.grpc.pb.h"
#include "runtime/error.h"
#include "tests/support/coordinator_client.h"
#include "tests/support/text.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;
using weft::testing::caller;
using weft::testing::contains;
using weft::testing::in_time;
using weft::testing::set;
using weft::testing::with;
using Raw = weft::testing::RawCoordinatorClient;
namespace pb = weft::coordinator;
using grpc::StatusCode;

const std::string kToken = "coordinator-test-token";

// A rank joining by hand: the first beat of a stream it then holds (or drops, to die).
struct Joined {
  std::unique_ptr<grpc::ClientContext> ctx = std::make_unique<grpc::ClientContext>();
  std::unique_ptr<grpc::ClientReaderWriter<pb::Beat, pb::BeatAck>> stream;
  grpc::Status status;
  pb::JoinReply reply;
};

Joined join(Raw& raw, const pb::Caller& c, int world_size, bool with_join = true) {
  Joined j;
  j.stream = raw.stub->Join(j.ctx.get());
  auto b = with<pb::Beat>(c);
  if (with_join) {
    b.mutable_join()->set_world_size(world_size);
    b.mutable_join()->set_pid(4242);
  }
  pb::BeatAck ack;
  if (j.stream->Write(b) && j.stream->Read(&ack)) {
    j.reply = ack.joined();
  } else {
    j.status = j.stream->Finish();
    j.stream.reset();
  }
  return j;
}

std::unique_ptr<CoordinatorStore> client(int port) {
  return CoordinatorStore::connect("127.0.0.1", port, kToken, deadline_after(5s));
}

// What another process would have to guess: the store's keys are untouched by any refusal.
void expect_absent(CoordinatorStore& store, const std::string& key) {
  EXPECT_THROW(store.get(key, deadline_after(50ms)), Error) << key << " was set";
}

TEST(CoordinatorService, RefusesNoTokenAWrongTokenAndRanksOutsideTheWorld) {
  Coordinator server("127.0.0.1", 0, kToken, {5s});
  Raw raw(server.port());
  auto member = client(server.port());
  member->join_as(0, 2);  // fixes the world at 2 ranks
  ::testing::internal::CaptureStderr();

  grpc::Status s = set(raw, caller("", 1), "a", "stranger");
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(contains(s.error_message(), "no job token")) << s.error_message();
  s = set(raw, caller("another-jobs-token", 1), "a", "stranger");
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(contains(s.error_message(), "wrong job token")) << s.error_message();
  s = set(raw, caller(kToken, 1, 2), "a", "out of range");
  EXPECT_EQ(s.error_code(), StatusCode::OUT_OF_RANGE);
  EXPECT_TRUE(contains(s.error_message(), "world of 2 ranks")) << s.error_message();
  s = set(raw, caller(kToken, 1, -7), "a", "out of range");
  EXPECT_EQ(s.error_code(), StatusCode::OUT_OF_RANGE);
  s = set(raw, caller(kToken, 1), "", "no key");
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
  s = set(raw, caller(kToken, 9), "a", "from the future");
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION);

  s = join(raw, caller(kToken, 1, 1), 3).status;  // another world size
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(contains(s.error_message(), "every rank must be given the same size"));
  s = join(raw, caller(kToken, 1, 0), 2).status;  // rank 0's place is taken
  EXPECT_EQ(s.error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(contains(s.error_message(), "rank 0 (pid ")) << s.error_message();
  s = join(raw, caller("", 1, 1), 2).status;
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);

  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "coordinator refused a request from ipv4:127.0.0.1:")) << log;
  expect_absent(*member, "a");
  EXPECT_EQ(server.generation(), 1u);
  member->check_members();  // nobody was declared lost
}

TEST(CoordinatorService, AStaleGenerationIsRefusedWithTheDeathNotice) {
  Coordinator server("127.0.0.1", 0, kToken, {5s});
  Raw raw(server.port());
  server.post_rank_lost("rank 1 (pid 99) was killed by signal 9");
  ASSERT_EQ(server.generation(), 2u);
  grpc::Status s = set(raw, caller(kToken, 1), "a", "old");
  EXPECT_EQ(s.error_code(), StatusCode::ABORTED);
  EXPECT_TRUE(contains(s.error_message(), "rank 1 (pid 99)")) << s.error_message();
  EXPECT_TRUE(set(raw, caller(kToken, 2), "b", "new").ok());
  auto store = client(server.port());
  expect_absent(*store, "a");
  EXPECT_EQ(store->get("b", deadline_after(1s)), "new");
}

TEST(CoordinatorService, OversizedAndMalformedMessagesAreRefused) {
  Coordinator server("127.0.0.1", 0, kToken, {5s});
  Raw raw(server.port());
  grpc::Status s = set(raw, caller(kToken, 1), "big", std::string((64u << 20) + 1, 'x'));
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  // Bytes that are no SetRequest, sent as one.
  grpc::GenericStub generic(raw.channel);
  grpc::ClientContext ctx;
  in_time(ctx);
  std::string junk = "\xff\xff\xff\xff\x0f not a protobuf";
  grpc::Slice slice(junk);
  grpc::ByteBuffer request(&slice, 1), reply;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, "/weft.coordinator.Coordinator/Set", grpc::StubOptions(), &request,
                    &reply, [&](grpc::Status st) { done.set_value(st); });
  s = done.get_future().get();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error_code(), StatusCode::UNAVAILABLE) << s.error_message();
  auto store = client(server.port());
  store->set("still", "serving");
  EXPECT_EQ(store->get("still", deadline_after(1s)), "serving");
}

// A few hundred random byte strings, each on a connection of its own, while a job uses the
// coordinator beside them: every one is dropped, the job notices nothing.
TEST(CoordinatorService, RandomBytesOnItsPortLeaveItServing) {
  Coordinator server("127.0.0.1", 0, kToken, {5s});
  auto member = client(server.port());
  member->join_as(0, 1);
  std::atomic<bool> done{false};
  auto job = std::async(std::launch::async, [&] {
    int n = 0;
    for (; !done; ++n) {
      member->set("k", std::to_string(n));
      EXPECT_EQ(member->get("k", deadline_after(2s)), std::to_string(n));
    }
    return n;
  });
  EXPECT_TRUE(weft::testing::send_random_bytes(server.port(), 300, 14));
  done = true;
  EXPECT_GT(job.get(), 0);
  member->check_members();
  EXPECT_EQ(server.generation(), 1u);
  auto fresh = client(server.port());
  EXPECT_EQ(fresh->add("n", 1), 1);
}

// A member whose beat stream ends before it leaves has died: every waiter hears its name at once.
TEST(CoordinatorService, AMemberThatVanishesIsNamedToEveryWaiterAtOnce) {
  Coordinator server("127.0.0.1", 0, kToken, {10s});
  auto store = client(server.port());
  store->set("here", "1");
  Raw raw(server.port());
  Joined member = join(raw, caller(kToken, 1, 2), 4);
  ASSERT_TRUE(member.status.ok()) << member.status.error_message();
  auto waiting = std::async(std::launch::async, [&] { store->get("never", deadline_after(20s)); });
  std::this_thread::sleep_for(100ms);
  ::testing::internal::CaptureStderr();
  auto start = Clock::now();
  member.ctx->TryCancel();  // the rank dies: no leave
  try {
    waiting.get();
    FAIL() << "a wait outlived the death of a member";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 2 (pid 4242) lost its connection")) << e.what();
    EXPECT_TRUE(contains(e.what(), "store key 'never'")) << e.what();
  }
  EXPECT_LT(seconds_since(start), 1.0);
  EXPECT_EQ(server.loss().rank, 2);
  EXPECT_FALSE(server.loss().silent);  // it went away: its exit tells how
  member.stream->Finish();
  EXPECT_TRUE(contains(::testing::internal::GetCapturedStderr(), "rank 2 (pid 4242) lost"));
  EXPECT_EQ(server.generation(), 2u);
  // Every later request of the old generation fails too, naming it.
  try {
    store->get("here", deadline_after(1s));
    FAIL() << "a request of the old generation was answered";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 2 (pid 4242)")) << e.what();
  }
}

// A member that joined and stops beating (hung, SIGSTOP) is lost at the heartbeat timeout, while
// one that beats from its own thread stays.
TEST(CoordinatorService, ASilentMemberIsLostAtTheHeartbeatTimeout) {
  Coordinator server("127.0.0.1", 0, kToken, {600ms});
  auto beating = client(server.port());
  beating->join_as(0, 2);
  Raw raw(server.port());
  Joined member = join(raw, caller(kToken, 1, 1), 2);
  ASSERT_TRUE(member.status.ok()) << member.status.error_message();
  EXPECT_EQ(member.reply.heartbeat_interval_ms(), 120u);
  auto silent_from = Clock::now();  // joined, then silence with the connection open
  ::testing::internal::CaptureStderr();
  try {
    beating->wait({"never"}, deadline_after(10s));
    FAIL() << "a wait outlived a silent member";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_TRUE(contains(e.what(), "rank 1 (pid 4242) sent no heartbeat for")) << e.what();
    EXPECT_TRUE(contains(e.what(), "SIGSTOP")) << e.what();
  }
  double detected = seconds_since(silent_from);
  EXPECT_EQ(server.loss().rank, 1);
  EXPECT_TRUE(server.loss().silent);
  EXPECT_GE(detected, 0.55);
  EXPECT_LT(detected, 1.5);
  ::testing::internal::GetCapturedStderr();
  member.ctx->TryCancel();
  member.stream->Finish();
}

// weftrun --elastic restarts a job on the same coordinator: the new generation starts empty (no
// keys, no notice, a world size of its own), and every request of the old one is refused.
TEST(CoordinatorService, ANewGenerationForgetsTheLastAndRefusesItsRanks) {
  Coordinator server("127.0.0.1", 0, kToken, {5s});
  Raw raw(server.port());
  {
    auto old = client(server.port());
    old->join_as(0, 4);
    old->set("rank0-address", "old");
    server.post_rank_lost("rank 3 (pid 77) exited with code 1, as weftrun saw");
    EXPECT_EQ(server.loss().rank, -1);  // the launcher's word, not the coordinator's finding
    EXPECT_EQ(server.generation(), 2u);
  }
  server.begin_generation();
  EXPECT_EQ(server.generation(), 2u);  // the loss already ended generation 1
  EXPECT_EQ(server.loss().notice, "");

  grpc::Status s = set(raw, caller(kToken, 1, 0), "rank0-address", "stale");
  EXPECT_EQ(s.error_code(), StatusCode::ABORTED);
  EXPECT_TRUE(contains(s.error_message(), "generation 1 is over (the job is at generation 2)"))
      << s.error_message();
  s = join(raw, caller(kToken, 1, 1), 4).status;
  EXPECT_EQ(s.error_code(), StatusCode::ABORTED);

  auto fresh = client(server.port());
  fresh->join_as(0, 3);  // a smaller world than the last generation's
  expect_absent(*fresh, "rank0-address");
  fresh->set("rank0-address", "new");
  EXPECT_EQ(fresh->get("rank0-address", deadline_after(1s)), "new");
  fresh->check_members();
  fresh.reset();  // leaves

  server.begin_generation();  // a generation that ended without a loss still ends
  EXPECT_EQ(server.generation(), 3u);
  s = set(raw, caller(kToken, 2), "late", "from generation 2");
  EXPECT_EQ(s.error_code(), StatusCode::ABORTED);
}

TEST(CoordinatorService, AJoinStreamMustBeginWithTheJoin) {
  Coordinator server("127.0.0.1", 0, kToken, {5s});
  Raw raw(server.port());
  Joined beats_only = join(raw, caller(kToken, 1, 3), 4, false);
  EXPECT_EQ(beats_only.status.error_code(), StatusCode::INVALID_ARGUMENT);
  Joined outside = join(raw, caller(kToken, 1, 4), 4);
  EXPECT_EQ(outside.status.error_code(), StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(server.generation(), 1u);
}

TEST(CoordinatorService, APortInUseIsRefused) {
  Coordinator first("127.0.0.1", 0, kToken, {5s});
  try {
    Coordinator second("127.0.0.1", first.port(), kToken, {5s});
    FAIL() << "two coordinators share port " << first.port();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
    EXPECT_TRUE(contains(e.what(), std::to_string(first.port()))) << e.what();
  }
}

}  // namespace
}  // namespace weft::comm
