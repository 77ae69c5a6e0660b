// weft under mpirun, with no store and no weftrun: the collective matrix on backends mpi-ring
// (weft's algorithms over MPI_Isend/Irecv) and mpi (MPI's own collectives) on 2, 3 and 4 ranks,
// tcp and shm meeting through MPI, and the failures: a rank killed with SIGKILL, ranks that
// disagree on a size, an abort(), and backends that cannot run. Each case is one mpirun job of
// mpi_rank_main (see there for what each scenario checks) under a hard timeout.
#include <gtest/gtest.h>

#include "tests/multiproc/mpi_job.h"

namespace weft::testing {
namespace {

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

MpiJobResult run_scenario(const std::string& backend, const std::string& scenario, int ranks) {
  MpiJobOptions o;
  o.ranks = ranks;
  o.args = {"--backend", backend, "--scenario", scenario};
  o.env = mpi_test_env();
  o.timeout = std::chrono::seconds(90);
  return run_mpi_job(o);
}

void expect_clean_success(const MpiJobResult& r) {
  EXPECT_FALSE(r.timed_out) << r.summary();
  EXPECT_EQ(r.exit_code, 0) << r.summary();
  EXPECT_EQ(count_of(r.output, "MISMATCH"), 0u) << r.summary();
  EXPECT_TRUE(r.leftovers.empty()) << r.summary();
}

struct Case {
  std::string backend;
  int ranks;
  friend void PrintTo(const Case& c, std::ostream* os) {
    *os << c.backend << " on " << c.ranks << " ranks";
  }
};
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string b = info.param.backend;
  for (char& c : b)
    if (c == '-') c = '_';
  return b + "_" + std::to_string(info.param.ranks) + "ranks";
}

class MpiCollectives : public ::testing::TestWithParam<Case> {};

TEST_P(MpiCollectives, MatrixMatchesReference) {
  const Case& c = GetParam();
  MpiJobResult r = run_scenario(c.backend, "matrix", c.ranks);
  expect_clean_success(r);
  EXPECT_EQ(count_of(r.output, "matrix passed"), static_cast<size_t>(c.ranks)) << r.summary();
}

INSTANTIATE_TEST_SUITE_P(Mpirun, MpiCollectives,
                         ::testing::Values(Case{"mpi-ring", 2}, Case{"mpi-ring", 3},
                                           Case{"mpi-ring", 4}, Case{"mpi", 2}, Case{"mpi", 3},
                                           Case{"mpi", 4}),
                         case_name);

TEST_P(MpiCollectives, BatchP2PRingOf16MiBEachWay) {
  const Case& c = GetParam();
  MpiJobResult r = run_scenario(c.backend, "batch-p2p", c.ranks);
  expect_clean_success(r);
  EXPECT_EQ(count_of(r.output, "batch-p2p passed"), static_cast<size_t>(c.ranks)) << r.summary();
}

// tcp and shm ranks started by mpirun meet through a store rank 0 serves and announces over MPI.
class MpiRendezvous : public ::testing::TestWithParam<Case> {};

TEST_P(MpiRendezvous, TransportsMeetThroughMpi) {
  const Case& c = GetParam();
  MpiJobResult r = run_scenario(c.backend, "quick", c.ranks);
  expect_clean_success(r);
  EXPECT_EQ(count_of(r.output, "matrix passed"), static_cast<size_t>(c.ranks)) << r.summary();
}

INSTANTIATE_TEST_SUITE_P(Mpirun, MpiRendezvous,
                         ::testing::Values(Case{"tcp", 3}, Case{"shm", 3}, Case{"auto", 2}),
                         case_name);

class MpiFaults : public ::testing::TestWithParam<std::string> {};

// Open MPI ends the job when a rank dies; weft's part is not to hang in the meantime and to
// leave the survivors killable (they sleep in their waits, not inside MPI).
TEST_P(MpiFaults, KilledRankEndsTheJobNamingIt) {
  MpiJobResult r = run_scenario(GetParam(), "kill", 3);
  ASSERT_FALSE(r.timed_out) << r.summary();
  EXPECT_NE(r.exit_code, 0) << r.summary();
  EXPECT_EQ(count_of(r.output, "iteration 3 done"), 3u) << r.summary();
  EXPECT_NE(r.output.find("rank 2"), std::string::npos) << r.summary();
  EXPECT_NE(r.output.find("signal 9"), std::string::npos) << r.summary();
  EXPECT_LT(r.seconds, 30.0) << r.summary();
  EXPECT_TRUE(r.leftovers.empty()) << r.summary();
}

TEST_P(MpiFaults, MismatchedSizesFailNamingBothValues) {
  MpiJobResult r = run_scenario(GetParam(), "mismatch", 3);
  expect_clean_success(r);  // each rank exits 0 only when it caught the expected error in time
  EXPECT_EQ(count_of(r.output, " caught after "), 3u) << r.summary();
  EXPECT_NE(r.output.find("f32 x 999"), std::string::npos) << r.summary();
  EXPECT_NE(r.output.find("f32 x 1000"), std::string::npos) << r.summary();
  EXPECT_NE(r.output.find("InvalidArgument"), std::string::npos) << r.summary();
}

// Every wait in MPI's communicator set-up has a deadline: a peer that comes late to
// MPI_Comm_idup, MPI_Comm_split or MPI_Comm_create_group fails the waiting rank with Timeout at
// its deadline instead of holding it (these calls used to block with no deadline).
TEST(MpiDeadlines, CommunicatorSetUpGivesUpOnALatePeer) {
  MpiJobResult r = run_scenario("mpi", "late-peer", 2);
  ASSERT_FALSE(r.timed_out) << r.summary();
  EXPECT_EQ(count_of(r.output, "UNEXPECTED"), 0u) << r.summary();
  for (const char* call : {"dup", "split", "create_group"}) {
    EXPECT_NE(r.output.find(std::string("rank 0 in ") + call + ": rank 0 caught after"),
              std::string::npos)
        << call << "\n"
        << r.summary();
    EXPECT_NE(r.output.find(std::string("rank 1 finished ") + call + " late"), std::string::npos)
        << call << "\n"
        << r.summary();
  }
  EXPECT_EQ(count_of(r.output, "Timeout: rank 0: MPI_Comm_"), 3u) << r.summary();
  EXPECT_TRUE(r.leftovers.empty()) << r.summary();
}

// Every op x every argument that must agree, at 8 bytes, 16 MiB, and 16 to 64 KiB where backend
// mpi's ranks can take different ways to agree (mismatch_cases.h, mpi_rank_main.cc).
TEST_P(MpiFaults, EveryMismatchFailsEveryRankNamingBothValues) {
  for (const char* size : {"8B", "16MiB", "edges"}) {
    MpiJobResult r = run_scenario(GetParam(), std::string("mismatch-table-") + size, 2);
    expect_clean_success(r);
    EXPECT_EQ(count_of(r.output, "mismatch table passed"), 2u) << r.summary();
  }
}

// A mismatch leaves its communicator unusable (the mismatched op may still be pending in MPI):
// the next op fails at once instead of hanging, and the communicator it was split from works.
TEST_P(MpiFaults, AMismatchLeavesItsCommunicatorFailingFast) {
  MpiJobResult r = run_scenario(GetParam(), "mismatch-after", 2);
  expect_clean_success(r);
  EXPECT_EQ(count_of(r.output, "mismatch-after passed"), 2u) << r.summary();
  EXPECT_NE(r.output.find("f32 x 5"), std::string::npos) << r.summary();
  EXPECT_NE(r.output.find("f32 x 6"), std::string::npos) << r.summary();
}

// Receives that wait on each other while a third rank sends to one of them
// (run_crossed_receives): every rank fails with InvalidArgument naming both within two seconds.
TEST_P(MpiFaults, CrossedReceivesFailEveryRankNamingBoth) {
  MpiJobResult r = run_scenario(GetParam(), "crossed-receives", 3);
  expect_clean_success(r);
  EXPECT_EQ(count_of(r.output, "crossed receives passed"), 3u) << r.summary();
}

// Point-to-point waits that are no deadlock (stall_cases.h): a late sender, and a stall notice
// given up once its op's data arrived. Each rank prints its line only if all its checks held.
TEST_P(MpiFaults, LateSendersAndStaleNoticesAreNoDeadlock) {
  for (const char* scenario : {"late-sender", "notice-behind-full-mailbox"}) {
    MpiJobResult r = run_scenario(GetParam(), scenario, 3);
    expect_clean_success(r);
    EXPECT_EQ(count_of(r.output, std::string(scenario) + " passed"), 3u) << r.summary();
  }
}

TEST_P(MpiFaults, AbortReachesThePeersAtOnce) {
  MpiJobResult r = run_scenario(GetParam(), "abort", 3);
  expect_clean_success(r);
  EXPECT_EQ(count_of(r.output, "rank 0 aborted: rank 0 gave up on purpose"), 2u) << r.summary();
}

// Waiting for a late rank sleeps: MPI moves bytes only inside MPI calls, and a rank that spun
// on them would starve the others when ranks outnumber cores.
TEST_P(MpiFaults, WaitingForALateRankSleeps) {
  MpiJobResult r = run_scenario(GetParam(), "idle", 3);
  expect_clean_success(r);
  EXPECT_EQ(count_of(r.output, " s of cpu"), 3u) << r.summary();
}

INSTANTIATE_TEST_SUITE_P(Mpirun, MpiFaults, ::testing::Values("mpi-ring", "mpi"),
                         [](const auto& info) {
                           return info.param == "mpi" ? std::string("mpi")
                                                      : std::string("mpi_ring");
                         });

MpiJobResult run_alone(const std::string& backend, std::map<std::string, std::string> env) {
  MpiJobOptions o;
  o.args = {"--backend", backend, "--scenario", "error"};
  o.env = mpi_test_env();
  o.env.insert(env.begin(), env.end());
  o.timeout = std::chrono::seconds(30);
  return run_without_mpirun(o);
}

// On a machine without a GPU (CI) the NCCL backends say why they cannot run: weft was built
// without CUDA/NCCL, or it was but no device is usable.
TEST(MpiBackendErrors, NcclWithoutAGpuSaysWhy) {
  for (const char* backend : {"nccl", "nccl-ring"}) {
    MpiJobResult r = run_alone(backend, {});
    EXPECT_EQ(r.exit_code, 0) << r.summary();
    EXPECT_NE(r.output.find("EXPECTED ERROR Unavailable: rank 0: backend " + std::string(backend)),
              std::string::npos)
        << r.summary();
    bool not_built = r.output.find("built without CUDA or NCCL") != std::string::npos;
    bool no_gpu = r.output.find("finds no usable GPU") != std::string::npos;
    EXPECT_TRUE(not_built || no_gpu) << r.summary();
  }
}

// A job that weftrun (or anyone but mpirun) started cannot use MPI's backends: MPI sees one
// rank where weft sees several, and says how to launch instead.
TEST(MpiBackendErrors, MpiBackendsOutsideMpirunNameTheLauncher) {
  for (const char* backend : {"mpi", "mpi-ring"}) {
    MpiJobResult r = run_alone(backend, {{"WEFT_RANK", "1"}, {"WEFT_WORLD_SIZE", "2"}});
    EXPECT_EQ(r.exit_code, 0) << r.summary();
    EXPECT_NE(r.output.find("MPI sees rank 0 of 1"), std::string::npos) << r.summary();
    EXPECT_NE(r.output.find("mpirun -np N"), std::string::npos) << r.summary();
  }
}

}  // namespace
}  // namespace weft::testing
