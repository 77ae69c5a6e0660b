// Allreduce across nodes (comm/hierarchy.h) in real processes: forked ranks over tcp, told by the
// launcher's variables that they sit on several nodes (WEFT_NODE_RANK, WEFT_LOCAL_RANK,
// WEFT_LOCAL_WORLD_SIZE, as `weftrun --nnodes` gives them), so each node's ranks meet over shared
// memory and the nodes' leaders over tcp. Even (2 + 2) and uneven (3 + 2; 2 + 1 + 3, one rank
// alone) nodes; sum and avg over several dtypes, zero and odd counts, small and a few MiB, on
// registered and plain memory: every rank equal to the sequential reference and every allreduce
// hierarchical (in place inside the node exactly when registered); float data whose sum rounds,
// the same bytes on every rank; one rank voting no keeps every rank flat; a count mismatch
// failing every rank with InvalidArgument, as does avg against sum (within a node, or only
// between nodes); the phases bounded by the allreduce's one deadline; a registered buffer dropped
// mid-op an error, not a crash; a rank whose launcher variables differ still meeting the nodes;
// a rank killed mid-op named by the survivors. No run leaves a file in /dev/shm (expect_all_ok
// and expect_survivors_name_victim check it).
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/fork_checks.h"
#include "tests/support/fork_ranks.h"

namespace weft::testing {
namespace {

// Ranks per node, node-major as weftrun numbers them: {3, 2} is ranks 0-2 on node 0, 3-4 on 1.
using Nodes = std::vector<int>;

ForkOptions across(const Nodes& nodes) {
  ForkOptions o;
  o.ranks = std::accumulate(nodes.begin(), nodes.end(), 0);
  o.backend = "tcp";
  o.timeout = std::chrono::seconds(60);
  o.env = {{"WEFT_DIRECT_BYTES", "0"}, {"WEFT_TIMEOUT", "30"}};
  return o;
}

// Gives this forked rank the variables weftrun --nnodes gives a rank of `nodes`; returns how
// many ranks its node holds.
int place(const Nodes& nodes, int rank) {
  int first = 0, node = 0;
  while (rank >= first + nodes[node]) first += nodes[node++];
  setenv("WEFT_NODE_RANK", std::to_string(node).c_str(), 1);
  setenv("WEFT_LOCAL_RANK", std::to_string(rank - first).c_str(), 1);
  setenv("WEFT_LOCAL_WORLD_SIZE", std::to_string(nodes[node]).c_str(), 1);
  return nodes[node];
}

// Every allreduce so far went across nodes hierarchically, `in_place` of them in place inside
// the node; exit code 4 (printing what ran) otherwise.
int check_path(const comm::Communicator& comm, uint64_t allreduces, uint64_t in_place) {
  if (comm.hierarchical_ops() == allreduces && comm.direct_ops() == in_place) return 0;
  fprintf(stderr, "rank %d: %llu of %llu allreduces hierarchical, %llu in place, expected %llu\n",
          comm.rank(), static_cast<unsigned long long>(comm.hierarchical_ops()),
          static_cast<unsigned long long>(allreduces),
          static_cast<unsigned long long>(comm.direct_ops()),
          static_cast<unsigned long long>(in_place));
  return 4;
}

// f32 data whose sums round (not small integers): the ranks' results must be the same bytes,
// and near the sum taken in double. Returns mismatches.
std::vector<std::string> check_identical_floats(comm::Communicator& comm, size_t count) {
  const int n = comm.size();
  auto value = [](int rank, size_t i) {
    return static_cast<float>(std::sin(0.37 * static_cast<double>(i) + rank) * 1e3 / (rank + 1));
  };
  comm::RegisteredBuffer buf = comm.alloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) buf.as<float>()[i] = value(comm.rank(), i);
  comm.allreduce(buf.view(DType::f32, count)).wait();
  std::vector<std::string> failures;
  for (size_t i = 0; i < count && failures.empty(); i++) {
    double want = 0;
    for (int r = 0; r < n; r++) want += value(r, i);
    if (std::fabs(buf.as<float>()[i] - want) > 1e-3 * (1 + std::fabs(want)))
      failures.push_back("element " + std::to_string(i) + " is " +
                         std::to_string(buf.as<float>()[i]) + ", the sum is " +
                         std::to_string(want));
  }
  // Every rank's result, gathered: the same bytes as this rank's.
  std::vector<float> all(count * n);
  comm.allgather(buf.view(DType::f32, count), Tensor::flat(all.data(), DType::f32, all.size()))
      .wait();
  for (int r = 0; r < n; r++)
    if (std::memcmp(all.data() + r * count, buf.data(), count * sizeof(float)) != 0)
      failures.push_back("rank " + std::to_string(comm.rank()) + "'s result differs from rank " +
                         std::to_string(r) + "'s");
  return failures;
}

class Hierarchical : public ::testing::TestWithParam<Nodes> {};

TEST_P(Hierarchical, AllreduceMatchesReferenceOnEveryRank) {
  const Nodes nodes = GetParam();
  expect_all_ok(fork_ranks(across(nodes), [&nodes](int rank) {
    // A rank alone on its node has no node phases: its registered memory is plain.
    const bool alone = place(nodes, rank) == 1;
    auto comm = comm::init_from_env();
    std::vector<std::string> failures;
    uint64_t allreduces = 0, in_place = 0;
    auto add = [&](std::vector<std::string> f) {
      failures.insert(failures.end(), f.begin(), f.end());
    };
    for (DType t : {DType::f32, DType::bf16, DType::i32, DType::u8})
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
        std::vector<size_t> counts = {0, 1, 7, 1001};
        // A few MiB (odd) for one pair: the phases' chunking does not depend on the dtype or op.
        if (t == DType::f32 && op == ReduceOp::sum) counts.push_back((3u << 20) / 4 + 5);
        for (size_t count : counts) {
          add(check_registered_allreduce(*comm, count, t, op));
          add(check_allreduce(*comm, count, t, op));
          allreduces += 4;
          in_place += 2;  // the registered pair
        }
      }
    add(check_identical_floats(*comm, 100003));
    int bad = report(failures);
    return bad ? bad : check_path(*comm, allreduces + 1, alone ? 0 : in_place + 1);
  }));
}

INSTANTIATE_TEST_SUITE_P(Layouts, Hierarchical,
                         ::testing::Values(Nodes{2, 2}, Nodes{3, 2}, Nodes{2, 1, 3}),
                         [](const auto& info) {
                           std::string name;
                           for (int n : info.param)
                             name += (name.empty() ? "" : "x") + std::to_string(n);
                           return name + "ranks";
                         });

// One rank that votes against the hierarchy (WEFT_HIERARCHY=0) keeps every rank on the flat
// algorithms: never one rank hierarchical and another flat.
TEST(HierarchicalVote, OneRankVotingNoKeepsEveryRankFlat) {
  const Nodes nodes = {2, 2};
  expect_all_ok(fork_ranks(across(nodes), [&nodes](int rank) {
    place(nodes, rank);
    if (rank == 2) setenv("WEFT_HIERARCHY", "0", 1);
    auto comm = comm::init_from_env();
    std::vector<std::string> failures;
    for (size_t count : {size_t{7}, size_t{100001}}) {
      auto f = check_registered_allreduce(*comm, count, DType::f32, ReduceOp::avg);
      failures.insert(failures.end(), f.begin(), f.end());
    }
    int bad = report(failures);
    return bad ? bad : check_path(*comm, 0, 0);
  }));
}

// Ranks that disagree on an allreduce across nodes (rank 3 gives 999 elements, the others 1000)
// all fail with InvalidArgument naming both counts, on both nodes, within the deadline: the node
// that sees the mismatch passes it on through every sub-group it aborts.
TEST(HierarchicalMismatch, EveryRankFailsNamingBothCounts) {
  const Nodes nodes = {2, 2};
  ForkRun run = fork_ranks(across(nodes), [&nodes](int rank) {
    place(nodes, rank);
    auto comm = comm::init_from_env();
    comm::RegisteredBuffer buf = comm->alloc(4096);
    try {
      comm->allreduce(buf.view(DType::f32, rank == 3 ? 999 : 1000)).wait();
    } catch (const Error& e) {
      printf("caught %s\n", e.what());
      return e.code() == ErrorCode::InvalidArgument ? 7 : 1;
    }
    return 0;
  });
  ASSERT_FALSE(run.timed_out) << run.summary();
  for (const auto& r : run.ranks) {
    EXPECT_EQ(r.exit_code, 7) << run.summary();
    EXPECT_LT(r.seconds, 20.0) << run.summary();
    for (const char* value : {"999", "1000"})
      EXPECT_NE(r.output.find(value), std::string::npos) << value << "\n" << run.summary();
  }
  EXPECT_TRUE(leftover_shm_files(run.job_id).empty());
}

// Ranks whose allreduces differ only in avg against sum, within a node (rank 1) or only between
// nodes (node 1: a mismatch only the leaders see), all fail with InvalidArgument naming both,
// within a couple of seconds: the phases sum, but their messages carry the parent's avg.
class HierarchicalOpMismatch : public ::testing::TestWithParam<bool> {};

TEST_P(HierarchicalOpMismatch, EveryRankFailsNamingAvgAndSum) {
  const bool between_nodes = GetParam();
  const Nodes nodes = {2, 2};
  ForkRun run = fork_ranks(across(nodes), [&nodes, between_nodes](int rank) {
    place(nodes, rank);
    auto comm = comm::init_from_env();
    std::vector<float> data(100, 1.0f);
    const bool sums = between_nodes ? rank >= 2 : rank == 1;
    try {
      comm->allreduce(Tensor::flat(data.data(), DType::f32, data.size()),
                      sums ? ReduceOp::sum : ReduceOp::avg)
          .wait();
    } catch (const Error& e) {
      printf("caught %s\n", e.what());
      return e.code() == ErrorCode::InvalidArgument ? 7 : 1;
    }
    return 0;
  });
  ASSERT_FALSE(run.timed_out) << run.summary();
  for (const auto& r : run.ranks) {
    EXPECT_EQ(r.exit_code, 7) << run.summary();
    EXPECT_LT(r.seconds, 5.0) << run.summary();
    for (const char* value : {"avg", "sum"})
      EXPECT_NE(r.output.find(value), std::string::npos) << value << "\n" << run.summary();
  }
}

INSTANTIATE_TEST_SUITE_P(Where, HierarchicalOpMismatch, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "BetweenNodes" : "InANode"; });

// A registered buffer dropped while a hierarchical allreduce on it is queued (rank 0, node 0's
// leader, which reduces into it in place) is an error logged, not a crash: the op holds the
// node's segment from its submission, as the flat direct path does.
TEST(HierarchicalFaults, BufferDroppedMidOpIsAnErrorNotACrash) {
  const Nodes nodes = {2, 2};
  expect_all_ok(fork_ranks(across(nodes), [&nodes](int rank) {
    place(nodes, rank);
    auto comm = comm::init_from_env();
    const size_t count = (8u << 20) / 4 + 1;
    comm::RegisteredBuffer buf = comm->alloc(count * 4);
    for (size_t i = 0; i < count; i++) buf.as<float>()[i] = 1.0f;
    comm::Work w = comm->allreduce(buf.view(DType::f32, count));
    if (rank == 0) buf = comm::RegisteredBuffer();  // dropped before waiting
    w.wait();
    if (rank != 0 && buf.as<float>()[count - 1] != 4.0f) return 3;
    return 0;
  }));
}

// A rank whose launcher variables say its node holds the whole job (rank 3) still joins the
// set-up's gather of node keys: deciding alone to skip it would pair its first collective with
// its peers' gather. Every rank then takes the hierarchical path its node key gives.
TEST(HierarchicalSetup, RankWithDifferentLauncherVariablesStillMeetsTheNodes) {
  const Nodes nodes = {2, 2};
  expect_all_ok(fork_ranks(across(nodes), [&nodes](int rank) {
    place(nodes, rank);
    if (rank == 3) setenv("WEFT_LOCAL_WORLD_SIZE", "4", 1);
    auto comm = comm::init_from_env();
    int bad = report(check_allreduce(*comm, 1001, DType::f32, ReduceOp::sum));
    return bad ? bad : check_path(*comm, 2, 0);  // in and out of place, on plain memory
  }));
}

// The phases share the allreduce's one deadline: node 0's phase inside the node ends late (rank
// 1 joins 0.8 s after rank 0) and node 1 never joins, so rank 0, whose allreduce started first,
// fails with Timeout once WEFT_TIMEOUT (1 s) from its start has passed, not 1 s after its
// phase across the nodes started.
TEST(HierarchicalTimeout, ThePhasesShareTheAllreducesDeadline) {
  const Nodes nodes = {2, 2};
  ForkOptions o = across(nodes);
  o.env = {{"WEFT_DIRECT_BYTES", "0"}, {"WEFT_TIMEOUT", "1"}};
  ForkRun run = fork_ranks(o, [&nodes](int rank) {
    place(nodes, rank);
    auto comm = comm::init_from_env();
    if (rank >= 2) {  // node 1 stays away (alive) until node 0 has given up
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      return 0;
    }
    if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(800));
    std::vector<float> data(100, 1.0f);
    const auto start = std::chrono::steady_clock::now();
    try {
      comm->allreduce(Tensor::flat(data.data(), DType::f32, data.size())).wait();
    } catch (const Error& e) {
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      printf("caught after %.2f s: %s\n", waited, e.what());
      if (rank == 0 && (e.code() != ErrorCode::Timeout || waited > 1.5)) return 1;
      return 7;
    }
    return 0;
  });
  ASSERT_FALSE(run.timed_out) << run.summary();
  EXPECT_EQ(run.ranks[0].exit_code, 7) << run.summary();
  EXPECT_EQ(run.ranks[1].exit_code, 7) << run.summary();
}

// A rank killed with SIGKILL mid-op, a node's leader (rank 2, in the ring across nodes) or a
// rank whose registered buffer its leader reads (rank 3): the survivors, on both nodes, fail
// with PeerLost naming it well within the deadline, without SIGBUS, and leave nothing in
// /dev/shm.
class HierarchicalFaults : public ::testing::TestWithParam<int> {};

TEST_P(HierarchicalFaults, KilledRankIsNamedBySurvivors) {
  const int victim = GetParam();
  const Nodes nodes = {2, 2};
  ForkOptions o = across(nodes);
  o.ready_line = "iteration 3";
  o.on_ready = [victim](const std::vector<pid_t>& pids) { kill(pids[victim], SIGKILL); };
  ForkRun run = fork_ranks(o, [&nodes](int rank) {
    place(nodes, rank);
    return allreduce_registered_until_stopped(rank);
  });
  expect_survivors_name_victim(run, victim, /*aborted_counts=*/false);
}

INSTANTIATE_TEST_SUITE_P(Victims, HierarchicalFaults, ::testing::Values(2, 3),
                         [](const auto& info) { return "rank" + std::to_string(info.param); });

}  // namespace
}  // namespace weft::testing
