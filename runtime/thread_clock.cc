#include "runtime/thread_clock.h"

#include <fcntl.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <thread>

namespace weft {

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

int current_cpu() { return sched_getcpu(); }

RunQueueClock::RunQueueClock() : fd_(::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) {}

double RunQueueClock::seconds() const {
  if (!fd_) return -1;
  // "<ns on a cpu> <ns waiting on a run queue> <timeslices>"; re-read from the start each time.
  char text[96];
  ssize_t n = ::pread(fd_.get(), text, sizeof text - 1, 0);
  if (n <= 0) return -1;
  text[n] = '\0';
  char* end = nullptr;
  std::strtoull(text, &end, 10);
  if (end == text) return -1;
  char* after = nullptr;
  unsigned long long waited = std::strtoull(end, &after, 10);
  if (after == end) return -1;
  return static_cast<double>(waited) * 1e-9;
}

}  // namespace weft
