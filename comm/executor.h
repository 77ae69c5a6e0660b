#pragma once
// Executor: runs a communicator's ops one at a time, in submission order, either on a worker
// thread it owns or on the thread that waits for them.
//
// Most callers wait for an op right after submitting it, and then Work::wait() runs it inline:
// no thread hand-off at all. Waking the worker for every op would cost a futex call (about
// 2 us on these machines) and, worse, a context switch that lands on the core where the peer
// rank runs. So the worker is told about new ops only when that is worth it:
//
//  - an op is handed to the worker only once it has stayed unclaimed for a claim window
//    (kClaimWindow), which call-then-wait never lets happen;
//  - while the caller claims its ops (call-then-wait), submit() makes no system call; the
//    worker polls the queue every kPollInterval to catch an op nobody waits for;
//  - a caller that has not overlapped lately (in its last kClaimsToEndOverlap claims, or
//    ever, no op ran on the worker and none was submitted while an earlier one was still
//    unclaimed) is polled less and less often: the sleep doubles with each poll that finds
//    only claimed ops, up to kMaxPollInterval. On a machine with fewer cores than busy threads
//    every wake-up of the worker can make the scheduler move its rank onto the core its peer
//    rank spins on (polled every 1 ms, two ranks on two cores lost 4-5% of an 8-byte
//    allreduce's time to that);
//  - once the worker had to take an op (the caller overlaps communication with compute), or
//    a submit() found an earlier op still unclaimed, submit() wakes it at once, until the
//    caller claims an op itself;
//  - an inline run that leaves ops queued behind it (the caller waited on an earlier one)
//    wakes the worker for them at once;
//  - after a quiet spell without submissions the worker parks (an untimed sleep, no CPU while
//    idle), and the next submit() wakes it.
//
// So an op nobody waits for starts within kClaimWindow, or, for the first one after a run of
// call-then-wait ops, within kClaimWindow plus the poll sleep: kPollInterval for a caller that
// overlaps (a trainer's gradient buckets run on the worker every step, between a handful of
// claimed ops), and for one that had not, at most about as long as its run of claimed ops has
// lasted (the sleep doubles only after a poll) and never more than kMaxPollInterval. That
// keeps compute/communication overlap and progress across communicators (an op on one
// communicator may need its peers to be inside another one), while call-then-wait costs no
// system call.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "comm/fingerprint.h"
#include "comm/op_body.h"
#include "comm/spin_mutex.h"
#include "comm/work.h"
#include "runtime/clock.h"

namespace weft::comm {

struct Work::State {
  // `finished` is stored after `error`, `started` and `ended` are written and never changes
  // back: whoever reads it true may read those without a lock. A thread that sleeps on `cv`
  // counts itself in `sleepers` first, so the op's end takes `mu` only when someone sleeps.
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> finished{false};
  std::atomic<bool> running{false};  // the body has started (Work::wait() polls it)
  std::atomic<int> sleepers{0};
  std::exception_ptr error;
  Fingerprint fp;
  std::chrono::milliseconds timeout{0};
  OpBody body;                             // called with started + timeout; cleared once run
  uint64_t ticket = 0;                     // submission number within its executor
  Clock::time_point started, ended;        // when the op ran (for overlap accounting)
  std::weak_ptr<class Executor> executor;  // to claim the op for inline execution
};

class Executor : public std::enable_shared_from_this<Executor> {
 public:
  // An unclaimed op waits this long for its caller to run it inline before the worker takes it.
  static constexpr std::chrono::microseconds kClaimWindow{50};
  // While the caller claims its ops, how often the worker looks at the queue unasked: first
  // every kPollInterval, then less often the longer the caller has claimed every op itself.
  static constexpr std::chrono::microseconds kPollInterval{1000};
  static constexpr std::chrono::microseconds kMaxPollInterval{32000};
  // Claims in a row (no op taken by the worker, none submitted behind an unclaimed one) after
  // which a caller no longer counts as one that overlaps, and the poll may slow down.
  static constexpr int kClaimsToEndOverlap = 1000;
  // Polls in a row that see no new submission before the worker parks: parking comes after
  // kQuietPollsBeforePark + 1 quiet polls, 11 ms or more (the sleep keeps what it had grown to).
  static constexpr int kQuietPollsBeforePark = 10;

  static std::shared_ptr<Executor> create(int rank);
  ~Executor();  // joins the worker after the queue drains (ops are bounded by their deadlines)
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // `body` gets the deadline it must finish by: `timeout` after it starts (when timed) or
  // after it first reads the deadline (when not: see LazyDeadline).
  Work submit(const Fingerprint& fp, std::chrono::milliseconds timeout, OpBody body);
  // Whether ops record when they start and end (Work::run_seconds), off by default: two clock
  // reads per op are a sixth of an 8-byte allreduce's budget on shared memory.
  void record_times(bool on) { record_times_.store(on, std::memory_order_relaxed); }
  // Runs queued ops on the calling thread, in order, up to and including `state`, as long as
  // no other thread is running one. Returns once `state` has run here, or once it cannot be
  // claimed (it is running elsewhere, already done, or behind an op running elsewhere).
  void run_inline_through(const std::shared_ptr<Work::State>& state);
  // How many ops must run before `state` starts: those queued ahead of it and the one running.
  size_t ops_ahead_of(const Work::State& state);
  // Drains the queue on the worker (ops are bounded by their deadlines) and joins it.
  void stop();
  // Whether the worker sleeps untimed, so that only a notify wakes it (for tests).
  bool worker_parked();
  // How long the worker sleeps between polls while the caller claims its ops (for tests).
  std::chrono::microseconds worker_poll_sleep();

 private:
  explicit Executor(int rank) : rank_(rank) {}
  void worker_loop();
  void run(const std::shared_ptr<Work::State>& state);
  // Unlocks; notifies the worker if it sleeps and should hear of queued ops at once.
  void wake_worker_if_needed(std::unique_lock<SpinMutex>& lock);
  // last_ when nothing else holds it any more (reset for a new op), else a new state.
  std::shared_ptr<Work::State> fresh_state();

  int rank_;
  SpinMutex mu_;  // taken three times per op (submit, claim, release): see spin_mutex.h
  std::condition_variable_any cv_;  // the worker sleeps here
  std::deque<std::shared_ptr<Work::State>> queue_;
  uint64_t submissions_ = 0;
  bool busy_ = false;              // an op is running (on the worker or inline)
  bool worker_sleeping_ = false;   // in a timed or untimed wait on cv_
  bool parked_ = false;            // in an untimed wait: only a notify wakes it
  bool overlapping_ = false;       // an op ran on the worker, or queued behind an unclaimed one,
                                   // within the last kClaimsToEndOverlap claims
  int claims_in_a_row_ = 0;        // ops the caller ran inline since it last overlapped
  std::chrono::microseconds poll_sleep_ = kPollInterval;  // see the header comment
  bool stopping_ = false;
  std::atomic<bool> record_times_{false};
  // The last op submitted, kept for reuse: in a call-then-wait loop its Work is gone by the
  // next submit(), and reusing its state saves an allocation and a free per op.
  std::shared_ptr<Work::State> last_;
  std::thread worker_;
};

}  // namespace weft::comm
