#include "launcher/coordinator_watch.h"

#include <algorithm>
#include <sstream>

namespace weft::launcher {

CoordinatorWatch::CoordinatorWatch(comm::CoordinatorStore& store, std::string address,
                                   std::chrono::milliseconds timeout)
    : store_(store), address_(std::move(address)), timeout_(timeout), last_answer_(Clock::now()) {
  thread_ = std::thread([this] { run(); });
}

CoordinatorWatch::~CoordinatorWatch() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

// A question every fifth of the timeout, as ranks beat, each given two fifths to be answered: a
// loaded machine's slow answer is not a loss (several in a row must go unanswered), and the
// destructor waits for less than the timeout.
void CoordinatorWatch::run() {
  const auto every =
      std::max<std::chrono::milliseconds>(timeout_ / 5, std::chrono::milliseconds(1));
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    const bool answered = store_.answers(Clock::now() + std::min(timeout_, every * 2));
    lock.lock();
    if (answered) last_answer_ = Clock::now();
    stop_cv_.wait_for(lock, every, [this] { return stop_; });
  }
}

std::string CoordinatorWatch::lost() const {
  std::lock_guard lock(mu_);
  const auto silent = Clock::now() - last_answer_;
  if (silent <= timeout_) return "";
  std::ostringstream os;
  os.precision(2);
  os << std::fixed << "the coordinator at " << address_ << " has not answered for "
     << std::chrono::duration<double>(silent).count()
     << " s (the heartbeat timeout, --heartbeat-timeout, is "
     << std::chrono::duration<double>(timeout_).count()
     << " s): its machine or the link to it is down, or what served it (node 0's weftrun, "
        "weft-coordinator) is gone; this node's ranks cannot go on without it";
  return os.str();
}

}  // namespace weft::launcher
