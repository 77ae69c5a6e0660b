#pragma once
// A weftrun whose ranks meet at a coordinator served elsewhere (node 0's weftrun, or
// weft-coordinator): a thread of its own asks the coordinator, a few times per heartbeat timeout,
// whether it answers. Without it that weftrun's ranks cannot go on (their store, their checkpoint
// commits, their loss notices all live there), yet nothing tells them it is gone: cut off from
// it, their requests and collectives would only time out, minutes later. The job (job.cc) stops
// them instead, naming the coordinator, once it has not answered for the heartbeat timeout: the
// same patience the coordinator has with a silent rank.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "comm/rendezvous/coordinator.h"
#include "runtime/clock.h"

namespace weft::launcher {

class CoordinatorWatch {
 public:
  // Watches through `store` (which must outlive this) until destroyed; `timeout` > 0.
  CoordinatorWatch(comm::CoordinatorStore& store, std::string address,
                   std::chrono::milliseconds timeout);
  ~CoordinatorWatch();  // stops the thread; waits at most one question's deadline
  CoordinatorWatch(const CoordinatorWatch&) = delete;
  CoordinatorWatch& operator=(const CoordinatorWatch&) = delete;

  // Empty while the coordinator answers; once it has not for the timeout, why the job cannot go
  // on, naming it.
  std::string lost() const;

 private:
  void run();

  comm::CoordinatorStore& store_;
  const std::string address_;
  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  Clock::time_point last_answer_;
  std::thread thread_;
};

}  // namespace weft::launcher
