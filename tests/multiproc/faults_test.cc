// Failures over real processes: a rank killed with SIGKILL mid-allreduce (and while a peer reads
// its memory, over shm's single-copy path), ranks that disagree on sizes, a stranger on the
// wire. Survivors must fail fast with errors that name the culprit, and nothing (processes,
// /dev/shm files) may be left behind.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <thread>

#include "comm/communicator.h"
#include "runtime/buffer.h"
#include "runtime/error.h"
#include "tests/support/fork_checks.h"
#include "tests/support/fork_ranks.h"
#include "tests/support/mismatch_cases.h"
#include "tests/support/stall_cases.h"

namespace weft::testing {
namespace {

class Faults : public ::testing::TestWithParam<std::string> {};

TEST_P(Faults, KilledRankIsNamedBySurvivorsWithinTenSeconds) {
  constexpr int kVictim = 2;
  ForkOptions o;
  o.ranks = 4;
  o.backend = GetParam();
  o.timeout = std::chrono::seconds(60);
  o.env = {{"WEFT_TIMEOUT", "60"}};  // PeerLost must come from detection, not the timeout
  o.ready_line = "iteration 3";
  o.on_ready = [&](const std::vector<pid_t>& pids) { kill(pids[kVictim], SIGKILL); };
  ForkRun run = fork_ranks(o, [](int rank) {
    auto comm = comm::init_from_env();
    Buffer buf(1 << 20);
    for (int i = 0;; i++) {
      comm->allreduce(buf.view(DType::f32, (1 << 20) / 4)).wait();
      if (i == 3) printf("iteration 3 done by rank %d\n", rank), fflush(stdout);
    }
    return 0;
  });
  // Every survivor names the dead rank (directly, or via a neighbour that aborted).
  expect_survivors_name_victim(run, kVictim, /*aborted_counts=*/true);
}

// A rank killed with SIGKILL while a peer reads its buffer straight from its memory (shm with
// WEFT_SHM_CMA=1; an allgather's blocks are read in 1 MiB pieces, so most of each op is reads):
// the survivors fail with PeerLost naming it, within seconds, and leave nothing in /dev/shm.
TEST(ShmSingleCopy, KilledSenderMidReadIsNamedBySurvivors) {
  constexpr int kVictim = 1;
  ForkOptions o;
  o.ranks = 3;
  o.backend = "shm";
  o.timeout = std::chrono::seconds(60);
  // PeerLost must come from detection, not the timeout.
  o.env = {{"WEFT_TIMEOUT", "60"}, {"WEFT_SHM_CMA", "1"}, {"WEFT_SHM_CMA_BYTES", "0"}};
  o.ready_line = "iteration 3";
  o.on_ready = [&](const std::vector<pid_t>& pids) { kill(pids[kVictim], SIGKILL); };
  ForkRun run = fork_ranks(o, [](int rank) {
    auto comm = comm::init_from_env();
    const size_t block = (16u << 20) / 4;
    Buffer in(block * 4), out(block * 4 * 3);
    for (int i = 0;; i++) {
      comm->allgather(in.view(DType::f32, block), out.view(DType::f32, block * 3)).wait();
      if (i == 3)
        printf("iteration 3 done by rank %d, %llu messages by CMA\n", rank,
               static_cast<unsigned long long>(comm->single_copy_messages())),
            fflush(stdout);
    }
    return 0;
  });
  expect_survivors_name_victim(run, kVictim, /*aborted_counts=*/false);
  for (const auto& r : run.ranks) {
    if (r.rank == kVictim) continue;
    EXPECT_EQ(r.output.find(" 0 messages by CMA"), std::string::npos) << run.summary();
  }
}

TEST_P(Faults, MismatchedSizesFailWithBothValues) {
  ForkOptions o;
  o.ranks = 3;
  o.backend = GetParam();
  o.timeout = std::chrono::seconds(60);
  o.env = {{"WEFT_TIMEOUT", "30"}};
  ForkRun run = fork_ranks(o, [](int rank) {
    auto comm = comm::init_from_env();
    size_t count = rank == 1 ? 999 : 1000;
    Buffer buf(count * 4);
    try {
      comm->allreduce(buf.view(DType::f32, count)).wait();
    } catch (const Error& e) {
      printf("caught %s\n", e.what());
      return e.code() == ErrorCode::InvalidArgument || e.code() == ErrorCode::Aborted ? 7 : 1;
    }
    return 0;
  });
  ASSERT_FALSE(run.timed_out) << run.summary();
  bool named_both = false;
  for (const auto& r : run.ranks) {
    EXPECT_EQ(r.exit_code, 7) << run.summary();
    named_both = named_both || (r.output.find("f32 x 999") != std::string::npos &&
                                r.output.find("f32 x 1000") != std::string::npos);
  }
  EXPECT_TRUE(named_both) << run.summary();
  for (const auto& r : run.ranks) EXPECT_LT(r.seconds, 20.0) << "a rank waited for its timeout";
}

// Runs a point-to-point `scenario` (stall_cases.h) on 3 ranks over `backend` with WEFT_TIMEOUT
// `timeout`: every rank must find what the scenario expects (exit 0) within `seconds`, and leave
// nothing in /dev/shm.
void expect_scenario_holds(const std::string& backend, const char* timeout,
                           int (*scenario)(comm::Communicator&), double seconds) {
  ForkOptions o;
  o.ranks = 3;
  o.backend = backend;
  o.timeout = std::chrono::seconds(60);
  o.env = {{"WEFT_TIMEOUT", timeout}};
  ForkRun run = fork_ranks(o, [scenario](int) {
    return scenario(*comm::init_from_env()) == 0 ? 0 : 3;
  });
  ASSERT_FALSE(run.timed_out) << run.summary();
  for (const auto& r : run.ranks) {
    EXPECT_EQ(r.exit_code, 0) << run.summary();
    EXPECT_LT(r.seconds, seconds) << run.summary();
  }
  EXPECT_TRUE(leftover_shm_files(run.job_id).empty());
}

// Receives that wait on each other, with a third rank sending to one of them
// (run_crossed_receives): every rank fails with InvalidArgument naming both receives within two
// seconds. WEFT_TIMEOUT is 20 s: the error must come from the stall notices, not a timeout.
TEST_P(Faults, CrossedReceivesFailEveryRankNamingBoth) {
  expect_scenario_holds(GetParam(), "20", run_crossed_receives, 20.0);
}

// A rank 0.5 s late is no deadlock: the stall notice its peer sent is dropped where it is read,
// and the data, the later messages and an allreduce arrive intact (run_late_sender).
TEST_P(Faults, ALateSenderIsNoDeadlock) {
  expect_scenario_holds(GetParam(), "10", run_late_sender, 10.0);
}

// A stall notice with no room to go (shm: the peer's mailbox full of messages it reads only
// later) is given up once its op's data has arrived, instead of making that op wait on the peer's
// later reads, which here wait on the op itself (run_notice_behind_full_mailbox). WEFT_TIMEOUT
// is 10 s: waiting for the notice would end in a Timeout.
TEST_P(Faults, ANoticeWithNoRoomIsGivenUpOnceTheDataArrived) {
  expect_scenario_holds(GetParam(), "10", run_notice_behind_full_mailbox, 5.0);
}

INSTANTIATE_TEST_SUITE_P(Transports, Faults, ::testing::Values("tcp", "shm"));

// Every op x every argument that must agree, at 8 bytes and at 16 MiB (mismatch_cases.h): both
// ranks fail with InvalidArgument naming both values within two seconds. WEFT_TIMEOUT is 5 s so
// that a hang shows as a late Timeout instead of stopping the test.
class Mismatches : public ::testing::TestWithParam<std::tuple<std::string, size_t>> {};

TEST_P(Mismatches, FailEveryRankNamingBothValues) {
  ForkOptions o;
  o.ranks = 2;
  o.backend = std::get<0>(GetParam());
  o.timeout = std::chrono::seconds(150);
  o.env = {{"WEFT_TIMEOUT", "5"}};
  const size_t elements = std::get<1>(GetParam());
  ForkRun run = fork_ranks(o, [elements](int) {
    return run_mismatch_cases(*comm::init_from_env(), elements) == 0 ? 0 : 3;
  });
  ASSERT_FALSE(run.timed_out) << run.summary();
  for (const auto& r : run.ranks) EXPECT_EQ(r.exit_code, 0) << run.summary();
  EXPECT_TRUE(leftover_shm_files(run.job_id).empty());
}

INSTANTIATE_TEST_SUITE_P(Transports, Mismatches,
                         ::testing::Combine(::testing::Values("tcp", "shm"),
                                            ::testing::Values(size_t{2}, size_t{4} << 20)),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) == 2 ? "_8B" : "_16MiB");
                         });

}  // namespace
}  // namespace weft::testing
