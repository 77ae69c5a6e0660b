#pragma once
// SpinMutex: a lock for critical sections of a few instructions that two threads take millions
// of times a second (an executor's queue, on every op). An uncontended std::mutex costs two
// locked instructions and two library calls per lock and unlock; this one costs one locked
// instruction and a plain store. A waiter spins briefly, then yields its core, since on an
// oversubscribed machine the holder may be waiting for that very core.
#include <sched.h>

#include <atomic>

#include "runtime/cpu_relax.h"

namespace weft::comm {

class SpinMutex {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (unsigned spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < kSpins)
          cpu_relax();
        else
          sched_yield();
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr unsigned kSpins = 100;
  std::atomic<bool> locked_{false};
};

}  // namespace weft::comm
