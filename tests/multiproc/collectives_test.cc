// The collective matrix over real processes on every transport: every collective x dtype x
// reduce op on sizes 0, 1, odd and not divisible by the rank count, on 2..5 ranks, plus
// allreduce over 64 MiB, each checked against the sequential reference. Over shm twice: as
// configured (single-copy reads, CMA, are off unless WEFT_SHM_CMA=1), and with every message too
// large for the FIFO read straight from the sender's memory (the large tests check that it was).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

#include "comm/communicator.h"
#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/fork_checks.h"
#include "tests/support/fork_ranks.h"

namespace weft::testing {
namespace {

// How an shm case moves its large messages.
enum class Cma { as_configured, every_message };

struct Case {
  std::string backend;
  int ranks;
  Cma cma = Cma::as_configured;
};

class Collectives : public ::testing::TestWithParam<Case> {
 protected:
  ForkOptions options(std::map<std::string, std::string> env) const {
    ForkOptions o;
    o.ranks = GetParam().ranks;
    o.backend = GetParam().backend;
    o.timeout = std::chrono::seconds(200);
    if (GetParam().cma == Cma::every_message) {
      // Every message too large for the FIFO: each ring step of the 64 MiB allreduce (2 MiB
      // segments), each message of the 16 MiB batch. (The matrix's are all small: its
      // send(right); recv(left) needs every message to fit the FIFO, on either path.)
      env["WEFT_SHM_CMA"] = "1";
      env["WEFT_SHM_CMA_BYTES"] = "0";
      if (!env.count("WEFT_SEGMENT_BYTES")) env["WEFT_SEGMENT_BYTES"] = "2097152";
    }
    o.env = std::move(env);
    return o;
  }
};

// `bad`, or a failure when the messages did not take the path the case asks for.
int check_cma_path(const comm::Communicator& comm, Cma cma, int bad, bool check_used = true) {
  if (bad != 0) return bad;
  const uint64_t n = comm.single_copy_messages();
  if (cma == Cma::every_message && check_used && n == 0) {
    fprintf(stderr, "rank %d: no message went by CMA with WEFT_SHM_CMA_BYTES=0\n", comm.rank());
    return 4;
  }
  return 0;
}

TEST_P(Collectives, MatrixMatchesReference) {
  // Tiny thresholds so both allreduce algorithms and many pipeline slices run at these sizes.
  ForkOptions o =
      options({{"WEFT_SMALL_BYTES", "256"}, {"WEFT_SEGMENT_BYTES", "256"}, {"WEFT_TIMEOUT", "60"}});
  expect_all_ok(fork_ranks(o, [cma = GetParam().cma](int) {
    auto comm = comm::init_from_env();
    return check_cma_path(*comm, cma, report(check_collectives(*comm, CheckMatrix{})),
                          /*check_used=*/false);
  }));
}

TEST_P(Collectives, AllreduceOver64MiB) {
  ForkOptions o = options({{"WEFT_TIMEOUT", "120"}});
  // 64 MiB + 3 elements: not divisible by any rank count here.
  size_t count = (64u << 20) / 4 + 3;
  expect_all_ok(fork_ranks(o, [count, cma = GetParam().cma](int) {
    auto comm = comm::init_from_env();
    return check_cma_path(*comm, cma,
                          report(check_allreduce(*comm, count, DType::f32, ReduceOp::sum)));
  }));
}

// Every rank sends 16 MiB to each neighbour and receives 16 MiB from each, in one batch_p2p
// (check_batch_p2p); SendThenRecvOf16MiBDeadlocks below shows that the batch is what saves it.
TEST_P(Collectives, BatchP2PRingOf16MiBEachWay) {
  ForkOptions o = options({{"WEFT_TIMEOUT", "60"}});
  o.timeout = std::chrono::seconds(120);
  expect_all_ok(fork_ranks(o, [cma = GetParam().cma](int) {
    auto comm = comm::init_from_env();
    return check_cma_path(*comm, cma, report(check_batch_p2p(*comm, (16u << 20) / sizeof(float))));
  }));
}

std::vector<Case> cases() {
  std::vector<Case> c;
  for (const char* b : {"tcp", "shm"})
    for (int n : {2, 3, 4, 5}) c.push_back({b, n});
  for (int n : {2, 4}) c.push_back({"shm", n, Cma::every_message});
  return c;
}

INSTANTIATE_TEST_SUITE_P(Transports, Collectives, ::testing::ValuesIn(cases()),
                         [](const auto& info) {
                           const char* cma = info.param.cma == Cma::every_message ? "_cma" : "";
                           return info.param.backend + cma + "_" +
                                  std::to_string(info.param.ranks) + "ranks";
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
