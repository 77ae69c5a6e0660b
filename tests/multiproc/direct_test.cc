// Allreduce in place on registered memory (Communicator::alloc over shm) in real processes:
// every dtype x reduce op on sizes from 1 element to several MiB, odd and not divisible by the
// rank count, on 2..5 ranks, against the sequential reference; the path is checked too (every
// op direct, or, with one rank's tensor in plain memory, every op on the FIFOs with the same
// results); a rank killed with SIGKILL mid-op; counts that differ; and a buffer dropped while
// its op runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/fork_checks.h"
#include "tests/support/fork_ranks.h"

namespace weft::testing {
namespace {

ForkOptions shm_ranks(int n) {
  ForkOptions o;
  o.ranks = n;
  o.backend = "shm";
  o.timeout = std::chrono::seconds(200);
  // Every size takes the direct path, down to one element.
  o.env = {{"WEFT_DIRECT_BYTES", "0"}, {"WEFT_TIMEOUT", "60"}};
  return o;
}

// Every op that ran took the path expected: `direct` ops in place, or none.
int check_path(const comm::Communicator& comm, uint64_t ops, bool direct) {
  uint64_t want = direct ? ops : 0;
  if (comm.direct_ops() == want) return 0;
  fprintf(stderr, "rank %d: %llu of %llu collectives ran in place, expected %llu\n", comm.rank(),
          static_cast<unsigned long long>(comm.direct_ops()), static_cast<unsigned long long>(ops),
          static_cast<unsigned long long>(want));
  return 4;
}

class Direct : public ::testing::TestWithParam<int> {};

TEST_P(Direct, MatrixMatchesReference) {
  expect_all_ok(fork_ranks(shm_ranks(GetParam()), [](int) {
    auto comm = comm::init_from_env();
    std::vector<std::string> failures;
    uint64_t ops = 0;
    for (DType t : kAllDTypes)
      for (ReduceOp op : kAllReduceOps) {
        // Several MiB (odd) for two pairs only: the chunking they exercise does not depend on
        // the dtype or the op, and each such case costs seconds under the sanitizers.
        std::vector<size_t> counts = {1, 2, 7, 1001, 65537};
        if ((t == DType::f32 && op == ReduceOp::sum) || (t == DType::bf16 && op == ReduceOp::avg))
          counts.push_back((3u << 20) / dtype_size(t) + 5);
        for (size_t count : counts) {
          auto f = check_registered_allreduce(*comm, count, t, op);
          failures.insert(failures.end(), f.begin(), f.end());
          ops += 2;
        }
      }
    int bad = report(failures);
    return bad ? bad : check_path(*comm, ops, true);
  }));
}

// Every collective of the shared matrix (reduce, reduce_scatter, broadcast, allgather, alltoall
// beside allreduce) with every buffer registered: the same results as the reference, every one
// of them in place.
TEST_P(Direct, EveryCollectiveMatchesReferenceInPlace) {
  expect_all_ok(fork_ranks(shm_ranks(GetParam()), [](int) {
    auto comm = comm::init_from_env();
    CheckMatrix m;
    m.registered = true;
    m.counts = {1, 7, 1001, 65539};
    int bad = report(check_collectives(*comm, m));
    // Per dtype and count: allreduce twice, reduce and reduce_scatter per reduce op, then
    // broadcast, allgather and alltoall (send/recv and the barrier take the FIFOs).
    const uint64_t ops = m.dtypes.size() * m.counts.size() * (4 * m.ops.size() + 3);
    return bad ? bad : check_path(*comm, ops, true);
  }));
}

TEST_P(Direct, OneRankUnregisteredTakesTheFifoPathWithTheSameResults) {
  expect_all_ok(fork_ranks(shm_ranks(GetParam()), [](int rank) {
    auto comm = comm::init_from_env();
    std::vector<std::string> failures;
    uint64_t ops = 0;
    for (DType t : {DType::f32, DType::i32, DType::f16})
      for (ReduceOp op : kAllReduceOps)
        for (size_t count : {size_t{1}, size_t{1001}, size_t{(1u << 20) + 3}}) {
          auto f = check_registered_allreduce(*comm, count, t, op, /*plain=*/rank == 1);
          failures.insert(failures.end(), f.begin(), f.end());
          ops += 2;
        }
    int bad = report(failures);
    return bad ? bad : check_path(*comm, ops, false);
  }));
}

INSTANTIATE_TEST_SUITE_P(Ranks, Direct, ::testing::Values(2, 3, 4, 5),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

// A rank killed with SIGKILL while its peers read its buffer: they fail with PeerLost naming it
// well within the deadline, without SIGBUS, and leave nothing in /dev/shm.
TEST(DirectFaults, KilledRankIsNamedBySurvivors) {
  constexpr int kVictim = 1;
  ForkOptions o = shm_ranks(3);
  o.timeout = std::chrono::seconds(60);
  o.env["WEFT_TIMEOUT"] = "60";  // PeerLost must come from detection, not the timeout
  o.ready_line = "iteration 3";
  o.on_ready = [&](const std::vector<pid_t>& pids) { kill(pids[kVictim], SIGKILL); };
  ForkRun run = fork_ranks(o, allreduce_registered_until_stopped);
  expect_survivors_name_victim(run, kVictim, /*aborted_counts=*/false);
}

// Ranks that disagree on a collective over registered memory all fail with InvalidArgument
// naming both values, instead of reading past a buffer or waiting out the deadline: the whole
// fingerprint is agreed before any buffer is touched. Each case: the op each rank issues, and
// what every rank's message must name.
struct Disagreement {
  const char* name;
  int ranks;
  void (*issue)(comm::Communicator& comm, comm::RegisteredBuffer& buf, int rank);
  std::vector<std::string> named;
};

class DirectMismatch : public ::testing::TestWithParam<Disagreement> {};

TEST_P(DirectMismatch, EveryRankFailsNamingBothValues) {
  const Disagreement& d = GetParam();
  ForkOptions o = shm_ranks(d.ranks);
  o.timeout = std::chrono::seconds(60);
  o.env["WEFT_TIMEOUT"] = "30";
  ForkRun run = fork_ranks(o, [&d](int rank) {
    auto comm = comm::init_from_env();
    comm::RegisteredBuffer buf = comm->alloc(4096);
    try {
      d.issue(*comm, buf, rank);
    } catch (const Error& e) {
      printf("caught %s\n", e.what());
      return e.code() == ErrorCode::InvalidArgument ? 7 : 1;
    }
    return 0;
  });
  ASSERT_FALSE(run.timed_out) << run.summary();
  for (const auto& r : run.ranks) {
    EXPECT_EQ(r.exit_code, 7) << run.summary();
    for (const std::string& value : d.named)
      EXPECT_NE(r.output.find(value), std::string::npos) << value << "\n" << run.summary();
  }
  EXPECT_TRUE(leftover_shm_files(run.job_id).empty());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DirectMismatch,
    ::testing::Values(
        Disagreement{"AllreduceCounts", 3,
                     [](comm::Communicator& c, comm::RegisteredBuffer& b, int rank) {
                       c.allreduce(b.view(DType::f32, rank == 1 ? 999 : 1000)).wait();
                     },
                     {"999", "1000"}},
        Disagreement{"BroadcastRoots", 2,
                     [](comm::Communicator& c, comm::RegisteredBuffer& b, int rank) {
                       c.broadcast(b.view(DType::f32, 1024), /*root=*/rank).wait();
                     },
                     {"root 0", "root 1"}}),
    [](const auto& info) { return std::string(info.param.name); });

// Dropping a registered buffer while its allreduce still runs is reported, and the op finishes
// on memory that stays mapped until it ends: no crash, right results in the peers.
TEST(DirectFaults, BufferDroppedMidOpIsAnErrorNotACrash) {
  ForkOptions o = shm_ranks(2);
  o.timeout = std::chrono::seconds(60);
  ForkRun run = fork_ranks(o, [](int rank) {
    auto comm = comm::init_from_env();
    const size_t count = (8u << 20) / 4 + 1;
    comm::RegisteredBuffer buf = comm->alloc(count * 4);
    for (size_t i = 0; i < count; i++) buf.as<float>()[i] = 1.0f;
    comm::Work w = comm->allreduce(buf.view(DType::f32, count));
    if (rank == 0) buf = comm::RegisteredBuffer();  // dropped before waiting
    w.wait();
    if (rank == 1 && buf.as<float>()[count - 1] != 2.0f) return 3;
    return 0;
  });
  expect_all_ok(run);
  // Only when the op had not finished yet: then the message names the fix.
  if (run.ranks[0].output.find("dropped") != std::string::npos) {
    EXPECT_NE(run.ranks[0].output.find("Wait for the op's Work"), std::string::npos);
  }
}

// Registered memory this process holds: mappings of its own segments and of the peers' it
// mapped, and descriptors of peers' segments it took in but has not mapped yet.
int registered_holdings() {
  int n = 0;
  if (FILE* maps = fopen("/proc/self/maps", "r")) {
    char line[4096];
    while (fgets(line, sizeof line, maps)) n += strstr(line, "weft-registered") != nullptr;
    fclose(maps);
  }
  for (int fd = 0; fd < 4096; fd++) {
    char path[64], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = 0;
    n += strstr(target, "weft-registered") != nullptr;
  }
  return n;
}

// Peers let go of freed buffers at their next direct op, with no op naming a new segment in
// between (they read the channel because its owner's count of notices moved); allocations
// between ops never clog the channel; and word of frees that a full queue refused (a burst of
// allocations with no op between) still arrives, so no peer keeps freed memory.
TEST(DirectMemory, PeersLetGoOfFreedBuffersAtTheirNextOp) {
  ForkOptions o = shm_ranks(2);
  o.timeout = std::chrono::seconds(60);
  o.env["WEFT_LOG"] = "error";  // not a warning per buffer the burst leaves plain
  expect_all_ok(fork_ranks(o, [](int rank) {
    auto comm = comm::init_from_env();
    const size_t count = 1024;
    uint64_t ops = 0;
    comm::RegisteredBuffer kept = comm->alloc(count * 4);
    auto op_on_kept = [&] {
      comm->allreduce(kept.view(DType::f32, count)).wait();
      ops++;
    };
    auto check = [&](int want, const char* when) {
      const int have = registered_holdings();
      if (have == want) return true;
      fprintf(stderr, "rank %d: %d registered mappings and descriptors %s, expected %d\n", rank,
              have, when, want);
      return false;
    };
    op_on_kept();
    const int baseline = registered_holdings();
    comm::RegisteredBuffer freed = comm->alloc(count * 4);
    comm->allreduce(freed.view(DType::f32, count)).wait();  // the peer maps it now
    ops++;
    if (!check(baseline + 2, "with a second buffer")) return 3;
    freed = comm::RegisteredBuffer();
    op_on_kept();
    if (!check(baseline, "one op after its free")) return 4;
    for (int i = 0; i < 300; i++) {  // more notices than a queue holds, read at each op
      comm::RegisteredBuffer b = comm->alloc(4096);
      if (!b.registered()) return 5;
      b = comm::RegisteredBuffer();
      op_on_kept();
    }
    if (!check(baseline, "after 300 buffers made and freed between ops")) return 6;
    {  // With no op between, more buffers than the queue has room for (the rest stay plain),
       // all freed together: the queue refuses word of most frees, which waits for room.
      std::vector<comm::RegisteredBuffer> burst;
      for (int i = 0; i < 200; i++) burst.push_back(comm->alloc(4096));
    }
    op_on_kept();  // the peer reads what its queue took
    op_on_kept();  // and what waited
    if (!check(baseline, "after a burst of 200")) return 7;
    comm::RegisteredBuffer last = comm->alloc(count * 4);
    if (!last.registered()) return 8;
    for (size_t i = 0; i < count; i++) last.as<float>()[i] = 2.0f;
    comm->allreduce(last.view(DType::f32, count)).wait();
    ops++;
    if (last.as<float>()[count - 1] != 4.0f) return 9;
    return check_path(*comm, ops, true);
  }));
}

}  // namespace
}  // namespace weft::testing
