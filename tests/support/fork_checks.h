#pragma once
// What forked-rank tests assert about a run, shared by the multi-process suites: the exit code
// a rank's body returns for the mismatches a check found, and that every rank ended well.
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/registered_buffer.h"
#include "tests/support/fork_ranks.h"

namespace weft::testing {

// Prints each mismatch and returns the rank's exit code: 0 when there were none, else 3.
inline int report(const std::vector<std::string>& failures) {
  for (const auto& f : failures) std::fprintf(stderr, "MISMATCH %s\n", f.c_str());
  return failures.empty() ? 0 : 3;
}

// Every rank exited 0, in time, leaving no shared-memory file behind.
inline void expect_all_ok(const ForkRun& run) {
  EXPECT_FALSE(run.timed_out) << run.summary();
  for (const auto& r : run.ranks) EXPECT_EQ(r.exit_code, 0) << run.summary();
  EXPECT_TRUE(leftover_shm_files(run.job_id).empty()) << "shared-memory files left behind";
}

// Rank `victim` was killed with SIGKILL; every survivor exited 1 (an Error, not a signal such as
// SIGBUS) within `seconds` of the kill, naming the victim and PeerLost (or Aborted when
// `aborted_counts`: a neighbour's abort may reach a rank before its own detection does), and
// nothing is left in /dev/shm. Exit times count from the start, so the victim's is the moment
// it was killed.
inline void expect_survivors_name_victim(const ForkRun& run, int victim, bool aborted_counts,
                                         double seconds = 10.0) {
  ASSERT_FALSE(run.timed_out) << run.summary();
  double kill_time = 0;
  for (const auto& r : run.ranks)
    if (r.rank == victim) kill_time = r.seconds;
  const std::string name = "rank " + std::to_string(victim);
  for (const auto& r : run.ranks) {
    if (r.rank == victim) {
      EXPECT_EQ(r.signal, SIGKILL) << run.summary();
      continue;
    }
    EXPECT_EQ(r.exit_code, 1) << run.summary();
    EXPECT_NE(r.output.find(name), std::string::npos) << run.summary();
    EXPECT_TRUE(r.output.find("PeerLost") != std::string::npos ||
                (aborted_counts && r.output.find("Aborted") != std::string::npos))
        << run.summary();
    EXPECT_LT(r.seconds - kill_time, seconds) << run.summary();
  }
  EXPECT_TRUE(leftover_shm_files(run.job_id).empty()) << "shared-memory files left behind";
}

// A rank's body for kill tests on registered memory: allreduces 16 MiB in place until it is
// killed or fails, having printed "iteration 3 done by rank R" (the ready line to kill after).
inline int allreduce_registered_until_stopped(int rank) {
  auto comm = comm::init_from_env();
  const size_t count = (16u << 20) / 4;
  comm::RegisteredBuffer buf = comm->alloc(count * 4);
  for (int i = 0;; i++) {
    comm->allreduce(buf.view(DType::f32, count)).wait();
    if (i == 3) std::printf("iteration 3 done by rank %d\n", rank), std::fflush(stdout);
  }
}

}  // namespace weft::testing
