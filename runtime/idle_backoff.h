#pragma once
// IdleBackoff: how a thread waits for MPI requests.
//
// Open MPI moves bytes only inside MPI calls (no progress thread for ob1/vader), so a waiter
// has to keep calling MPI_Test. Spinning on it forever would take a whole core from the other
// ranks (the test suite runs 4 ranks on 2 cores), and sleeping right away would add a timer
// tick to every step of a ring. So: test back to back for a short window after the last
// completion (the next message of a busy collective is microseconds away), yielding the core
// between tests, then sleep in doubling steps up to a cap, so an idle rank costs next to nothing
// (a few thousand short wake-ups a second, about 1% of a core) and still notices a completion
// within a quarter of a millisecond. The cap is short because a rank that fell asleep while its
// peer was descheduled would otherwise add a whole sleep to each step of the ring once the peer
// runs again.
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "runtime/clock.h"

namespace weft::comm {

class IdleBackoff {
 public:
  static constexpr std::chrono::microseconds kSpinWindow{200};
  static constexpr std::chrono::microseconds kFirstSleep{10};
  static constexpr std::chrono::microseconds kMaxSleep{250};

  // Something completed: the next waits spin again.
  void progressed() {
    idle_since_ = Clock::time_point{};
    sleep_ = kFirstSleep;
  }

  // Nothing completed in the last round of tests: yield or sleep, never past `until`.
  void idle(Deadline until) {
    Clock::time_point now = Clock::now();
    if (idle_since_ == Clock::time_point{}) idle_since_ = now;
    if (now - idle_since_ < kSpinWindow) {
      sched_yield();
      return;
    }
    auto nap = std::min<Clock::duration>(sleep_, until - now);
    if (nap > Clock::duration::zero()) std::this_thread::sleep_for(nap);
    sleep_ = std::min(sleep_ * 2, kMaxSleep);
  }

 private:
  Clock::time_point idle_since_{};
  std::chrono::microseconds sleep_ = kFirstSleep;
};

}  // namespace weft::comm
