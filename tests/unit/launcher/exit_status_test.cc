#include "launcher/exit_status.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

namespace weft::launcher {
namespace {

TEST(ExitStatus, ExitCodes) {
  EXPECT_EQ(describe_wait_status(W_EXITCODE(3, 0)), "exited with code 3");
  EXPECT_FALSE(succeeded(W_EXITCODE(3, 0)));
  EXPECT_TRUE(succeeded(W_EXITCODE(0, 0)));
}

TEST(ExitStatus, SignalsAreNamedAndMapTo128PlusTheNumber) {
  EXPECT_EQ(describe_wait_status(W_EXITCODE(0, SIGKILL)), "was killed by signal SIGKILL (9)");
  EXPECT_EQ(describe_wait_status(W_EXITCODE(0, SIGSEGV) | WCOREFLAG),
            "was killed by signal SIGSEGV (11), core dumped");
  EXPECT_FALSE(succeeded(W_EXITCODE(0, SIGTERM)));
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
}

TEST(ExitStatus, JobExitCodesMeanOneThingEach) {
  EXPECT_EQ(job_exit_code(W_EXITCODE(0, 0)), 0);
  EXPECT_EQ(job_exit_code(W_EXITCODE(2, 0)), 2);  // the program's own usage error
  for (int code : {1, 3, 4, 9, 100, 127, 128, 255})
    EXPECT_EQ(job_exit_code(W_EXITCODE(code, 0)), 1) << code;
  EXPECT_EQ(job_exit_code(W_EXITCODE(0, SIGKILL)), 128 + SIGKILL);
  EXPECT_EQ(job_exit_code(W_EXITCODE(0, SIGSEGV) | WCOREFLAG), 128 + SIGSEGV);
  EXPECT_EQ(job_exit_code(W_EXITCODE(128 + SIGTERM, 0)), 128 + SIGTERM);  // sh -c's killed child
  EXPECT_EQ(job_exit_code(W_EXITCODE(128 + SIGRTMAX, 0)), 128 + SIGRTMAX);
  EXPECT_EQ(job_exit_code(W_EXITCODE(129 + SIGRTMAX, 0)), 1);  // no signal has that number
}

}  // namespace
}  // namespace weft::launcher
