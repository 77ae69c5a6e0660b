#pragma once
// What a thread's wall time was made of, for figures that must tell computing from waiting on
// a shared machine: its CPU time (the work it did: what it would have taken on a core of its
// own), the CPU it runs on, and its time runnable but not running (waiting for a core, as the
// scheduler counts in /proc/thread-self/schedstat), and the cores the process may run on.
#include "runtime/unique_fd.h"

namespace weft {

// CPUs this process may run on (taskset and cgroup cpusets respected), at least 1.
int usable_cores();

// This thread's CPU time, in seconds since it started.
double thread_cpu_seconds();

// The CPU the calling thread runs on now (where the kernel placed it), -1 where unknown.
int current_cpu();

// The calling thread's time on a run queue, runnable but not running. Made on the thread it
// measures; -1 where the kernel does not say (no schedstat).
class RunQueueClock {
 public:
  RunQueueClock();
  double seconds() const;  // since the thread started; -1 where unknown

 private:
  UniqueFd fd_;
};

}  // namespace weft
