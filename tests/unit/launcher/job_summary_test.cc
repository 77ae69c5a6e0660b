#include "launcher/job_summary.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

namespace weft::launcher {
namespace {

TEST(JobSummary, RankSetsAreCompact) {
  EXPECT_EQ(format_rank_set({3}), "rank 3");
  EXPECT_EQ(format_rank_set({5, 0, 1, 2}), "ranks 0-2,5");
  EXPECT_EQ(format_rank_set({1, 3, 4}), "ranks 1,3-4");
  EXPECT_EQ(format_rank_set({2, 2}), "rank 2");
}

TEST(JobSummary, GroupsRanksByHowTheyEnded) {
  std::vector<RankOutcome> outcomes = {
      {0, W_EXITCODE(0, SIGTERM), true}, {1, W_EXITCODE(3, 0), false},
      {2, W_EXITCODE(0, SIGTERM), true}, {3, W_EXITCODE(0, 0), false},
      {4, std::nullopt, true},
  };
  std::string s = failure_summary("j42", 3, "rank 1 exited with code 3", outcomes);
  EXPECT_EQ(s,
            "weftrun: job j42 failed (exit code 3): rank 1 exited with code 3\n"
            "weftrun:   ranks 0,2: stopped by weftrun, was killed by signal SIGTERM (15)\n"
            "weftrun:   rank 1: exited with code 3\n"
            "weftrun:   rank 3: exited with code 0\n"
            "weftrun:   rank 4: did not exit even after SIGKILL; check for it with ps\n");
}

}  // namespace
}  // namespace weft::launcher
