// This thread's clocks against what they must show: CPU time grows while it computes and not
// while it sleeps, the run-queue time never goes back, the cores are those of its affinity, and
// its CPU is the one it is pinned to.
#include "runtime/thread_clock.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <thread>

namespace weft {
namespace {

TEST(ThreadClock, CpuTimeCountsWorkNotSleep) {
  const double start = thread_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double slept = thread_cpu_seconds() - start;
  EXPECT_LT(slept, 0.010);  // asleep: next to no CPU time
  volatile double x = 0;
  const double before = thread_cpu_seconds();
  while (thread_cpu_seconds() - before < 0.005) x = x + 1;
  EXPECT_GE(thread_cpu_seconds() - before, 0.005);
}

TEST(ThreadClock, RunQueueTimeIsKnownAndNeverGoesBack) {
  const RunQueueClock clock;
  const double first = clock.seconds();
  if (first < 0) GTEST_SKIP() << "this kernel has no /proc/thread-self/schedstat";
  std::this_thread::yield();
  EXPECT_GE(clock.seconds(), first);
}

TEST(ThreadClock, UsableCoresAreTheAffinitysCpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(usable_cores(), CPU_COUNT(&set));
}

TEST(ThreadClock, TheCurrentCpuIsOneTheThreadMayRunOn) {
  // Pinned to one CPU of its affinity, the thread is on that one.
  cpu_set_t set, one;
  CPU_ZERO(&set);
  ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof set, &set), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &set)) cpu++;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
  std::this_thread::yield();
  EXPECT_EQ(current_cpu(), cpu);
  ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof set, &set), 0);
}

}  // namespace
}  // namespace weft
