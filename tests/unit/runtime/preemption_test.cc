// A preemption notice is caught as a flag (runtime/preemption.h): the process lives on, the first
// signal is the one kept. The process-wide handler is installed once for the whole test binary,
// so the checks run in a child process, which ends with its findings as its exit status.
#include "runtime/preemption.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace weft {
namespace {

TEST(Preemption, SigtermAndSigusr1AreCaughtAndTheFirstIsKept) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int failures = 0;
    if (preemption_requested()) failures |= 1;
    catch_preemption_signals();
    ::raise(SIGUSR1);  // delivered before raise returns: the process survives it
    if (preemption_signal() != SIGUSR1) failures |= 2;
    ::raise(SIGTERM);
    if (preemption_signal() != SIGUSR1) failures |= 4;  // the first notice stays
    ::_exit(failures);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of a signal it should have caught";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed checks (bits): " << WEXITSTATUS(status);
  EXPECT_EQ(kPreemptedExitStatus, 75);
}

}  // namespace
}  // namespace weft
