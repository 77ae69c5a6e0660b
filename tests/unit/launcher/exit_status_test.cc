#include "launcher/exit_status.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

namespace weft::launcher {
namespace {

TEST(ExitStatus, ExitCodes) {
  EXPECT_EQ(describe_wait_status(W_EXITCODE(3, 0)), "exited with code 3");
  EXPECT_EQ(exit_code_of(W_EXITCODE(3, 0)), 3);
  EXPECT_FALSE(succeeded(W_EXITCODE(3, 0)));
  EXPECT_TRUE(succeeded(W_EXITCODE(0, 0)));
  EXPECT_EQ(exit_code_of(W_EXITCODE(0, 0)), 0);
}

TEST(ExitStatus, SignalsAreNamedAndMapTo128PlusTheNumber) {
  EXPECT_EQ(describe_wait_status(W_EXITCODE(0, SIGKILL)), "was killed by signal SIGKILL (9)");
  EXPECT_EQ(exit_code_of(W_EXITCODE(0, SIGKILL)), 137);
  EXPECT_EQ(describe_wait_status(W_EXITCODE(0, SIGSEGV) | WCOREFLAG),
            "was killed by signal SIGSEGV (11), core dumped");
  EXPECT_FALSE(succeeded(W_EXITCODE(0, SIGTERM)));
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
}

}  // namespace
}  // namespace weft::launcher
