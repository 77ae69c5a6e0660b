#pragma once
// Work: the handle of an asynchronous collective. Failures raised on the worker are stored here
// and rethrown by wait() on the caller's thread.
#include <exception>
#include <memory>
#include <string>

#include "runtime/clock.h"

namespace weft::comm {

class Work {
 public:
  struct State;
  Work() = default;
  explicit Work(std::shared_ptr<State> state) : state_(std::move(state)) {}

  // Blocks until the op completes; rethrows its weft::Error. Timeout if `deadline` passes
  // first (the op keeps running: abort() the communicator to stop it).
  void wait(Deadline deadline);
  // Blocks until the op completes, with the communicator's timeout (WEFT_TIMEOUT): the op
  // itself fails with Timeout once it has waited that long for its peers, counted from its
  // start, and this gives up (Timeout) if it has not ended the timeout plus kWaitGrace after
  // the op started or this call, whichever is later. Ops queued before it run first, each
  // bounded the same way.
  void wait();
  static constexpr std::chrono::seconds kWaitGrace{1};
  // How often a wait() for an op that has not started looks whether it has.
  static constexpr std::chrono::milliseconds kStartPoll{10};
  bool done() const;
  // The stored error of a finished op, or null.
  std::exception_ptr error() const;
  bool valid() const { return state_ != nullptr; }
  // Seconds the op ran (0 until it finished, and 0 unless its communicator records op times:
  // Communicator::record_op_times): with the caller's own waiting time this tells how much
  // communication was hidden behind compute.
  double run_seconds() const;
  // When the op started and ended running (the clock's epoch until it finished, and unless its
  // communicator records op times): where it goes on a timeline (weft-train --trace).
  Clock::time_point started_at() const;
  Clock::time_point ended_at() const;
  std::string describe() const;

 private:
  // Runs the op on this thread if it is next in line; returns whether it has finished. Reads
  // no clock, so a call-then-wait that finishes inline never computes a deadline.
  bool finish_inline();
  // Sleeps until the op finishes or `deadline`, then rethrows its error.
  void block_until_finished(Deadline deadline);
  // Sleeps until the op finishes, or the timeout plus kWaitGrace after it started (when it
  // has not started yet: after every op ahead of it could have run), then rethrows its error.
  void block_until_finished_in_time();
  [[noreturn]] void throw_timeout();

  std::shared_ptr<State> state_;
};

}  // namespace weft::comm
