// The collective matrix over real processes on every transport: every collective x dtype x
// reduce op on sizes 0, 1, odd and not divisible by the rank count, on 2..5 ranks, plus
// allreduce over 64 MiB, each checked against the sequential reference.
#include <gtest/gtest.h>

#include <cstdio>

#include "comm/communicator.h"
#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/fork_checks.h"
#include "tests/support/fork_ranks.h"

namespace weft::testing {
namespace {

struct Case {
  std::string backend;
  int ranks;
};

class Collectives : public ::testing::TestWithParam<Case> {};

TEST_P(Collectives, MatrixMatchesReference) {
  ForkOptions o;
  o.ranks = GetParam().ranks;
  o.backend = GetParam().backend;
  o.timeout = std::chrono::seconds(200);
  // Tiny thresholds so both allreduce algorithms and many pipeline slices run at these sizes.
  o.env = {{"WEFT_SMALL_BYTES", "256"}, {"WEFT_SEGMENT_BYTES", "256"}, {"WEFT_TIMEOUT", "60"}};
  expect_all_ok(fork_ranks(o, [](int) {
    auto comm = comm::init_from_env();
    return report(check_collectives(*comm, CheckMatrix{}));
  }));
}

TEST_P(Collectives, AllreduceOver64MiB) {
  ForkOptions o;
  o.ranks = GetParam().ranks;
  o.backend = GetParam().backend;
  o.timeout = std::chrono::seconds(200);
  o.env = {{"WEFT_TIMEOUT", "120"}};
  // 64 MiB + 3 elements: not divisible by any rank count here.
  size_t count = (64u << 20) / 4 + 3;
  expect_all_ok(fork_ranks(o, [count](int) {
    auto comm = comm::init_from_env();
    return report(check_allreduce(*comm, count, DType::f32, ReduceOp::sum));
  }));
}

// Every rank sends 16 MiB to each neighbour and receives 16 MiB from each, in one batch_p2p
// (check_batch_p2p); SendThenRecvOf16MiBDeadlocks below shows that the batch is what saves it.
TEST_P(Collectives, BatchP2PRingOf16MiBEachWay) {
  ForkOptions o;
  o.ranks = GetParam().ranks;
  o.backend = GetParam().backend;
  o.timeout = std::chrono::seconds(120);
  o.env = {{"WEFT_TIMEOUT", "60"}};
  expect_all_ok(fork_ranks(o, [](int) {
    auto comm = comm::init_from_env();
    return report(check_batch_p2p(*comm, (16u << 20) / sizeof(float)));
  }));
}

std::vector<Case> cases() {
  std::vector<Case> c;
  for (const char* b : {"tcp", "shm"})
    for (int n : {2, 3, 4, 5}) c.push_back({b, n});
  return c;
}

INSTANTIATE_TEST_SUITE_P(Transports, Collectives, ::testing::ValuesIn(cases()),
                         [](const auto& info) {
                           return info.param.backend + "_" + std::to_string(info.param.ranks) +
                                  "ranks";
                         });

// What batch_p2p is for: on tcp and shm a send of 16 MiB completes only as the peer reads it, so
// `send(right); recv(left)` on every rank deadlocks (each send waits for a receive queued behind
// the peer's own send) until WEFT_TIMEOUT (2 s here) fails every rank with Timeout.
TEST(CollectivesDeadlock, SendThenRecvOf16MiBDeadlocks) {
  for (const char* backend : {"tcp", "shm"}) {
    ForkOptions o;
    o.ranks = 2;
    o.backend = backend;
    o.timeout = std::chrono::seconds(60);
    o.env = {{"WEFT_TIMEOUT", "2"}};
    ForkRun run = fork_ranks(o, [](int) {
      auto comm = comm::init_from_env();
      std::vector<float> out((16u << 20) / sizeof(float), 1.0f), in(out.size());
      const int right = (comm->rank() + 1) % 2, left = right;
      try {
        comm::Work s = comm->send(Tensor::flat(out.data(), DType::f32, out.size()), right);
        comm->recv(Tensor::flat(in.data(), DType::f32, in.size()), left).wait();
        s.wait();
      } catch (const Error& e) {
        fprintf(stderr, "%s\n", e.what());
        return e.code() == ErrorCode::Timeout || e.code() == ErrorCode::Aborted ? 5 : 1;
      }
      return 0;
    });
    EXPECT_FALSE(run.timed_out) << backend << "\n" << run.summary();
    for (const auto& r : run.ranks) EXPECT_EQ(r.exit_code, 5) << backend << "\n" << run.summary();
    EXPECT_NE(run.summary().find("Timeout"), std::string::npos) << run.summary();
    EXPECT_TRUE(leftover_shm_files(run.job_id).empty());
  }
}

}  // namespace
}  // namespace weft::testing
