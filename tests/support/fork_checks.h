#pragma once
// What forked-rank tests assert about a run, shared by the multi-process suites: the exit code
// a rank's body returns for the mismatches a check found, and that every rank ended well.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

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

}  // namespace weft::testing
