#include "comm/executor.h"

#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {

std::shared_ptr<Executor> Executor::create(int rank) {
  std::shared_ptr<Executor> e(new Executor(rank));
  e->worker_ = std::thread([raw = e.get()] { raw->worker_loop(); });
  return e;
}

Executor::~Executor() { stop(); }

void Executor::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

size_t Executor::ops_ahead_of(const Work::State& state) {
  std::lock_guard lock(mu_);
  size_t ahead = busy_ ? 1 : 0;
  for (const auto& queued : queue_) {
    if (queued.get() == &state) return ahead;
    ahead++;
  }
  return 0;  // running or done
}

bool Executor::worker_parked() {
  std::lock_guard lock(mu_);
  return parked_;
}

std::chrono::microseconds Executor::worker_poll_sleep() {
  std::lock_guard lock(mu_);
  return poll_sleep_;
}

void Executor::wake_worker_if_needed(std::unique_lock<SpinMutex>& lock) {
  // A polling worker finds the queue on its next poll, which is soon enough while the caller
  // claims its own ops; a parked one, or one whose caller overlaps and has claimed nothing
  // since (the worker took its last op, or an op before this one is still unclaimed), must
  // hear now.
  bool wake = worker_sleeping_ && (parked_ || (overlapping_ && claims_in_a_row_ == 0));
  lock.unlock();
  if (wake) cv_.notify_one();
}

std::shared_ptr<Work::State> Executor::fresh_state() {
  // Only this executor hands out references to a state (there are no weak ones), so a count of
  // one stays one. The acquire fence pairs with the release in the last holder's decrement:
  // its reads of the state are over before we write. ThreadSanitizer supports neither the
  // fence nor this reasoning, so its builds always allocate.
#if !defined(__SANITIZE_THREAD__)
  if (last_ && last_.use_count() == 1) {
    std::atomic_thread_fence(std::memory_order_acquire);
    Work::State& s = *last_;
    s.finished.store(false, std::memory_order_relaxed);
    s.running.store(false, std::memory_order_relaxed);
    s.error = nullptr;
    s.started = s.ended = Clock::time_point{};
    return last_;
  }
#endif
  last_ = std::make_shared<Work::State>();
  last_->executor = weak_from_this();
  return last_;
}

Work Executor::submit(const Fingerprint& fp, std::chrono::milliseconds timeout, OpBody body) {
  std::unique_lock lock(mu_);
  if (stopping_)
    throw Error(ErrorCode::Aborted, "rank " + std::to_string(rank_) + ": " + fp.describe() +
                                        " submitted to a communicator that is shutting down");
  std::shared_ptr<Work::State> state = fresh_state();
  state->fp = fp;
  state->timeout = timeout;
  state->body = std::move(body);
  state->ticket = ++submissions_;
  if (!queue_.empty()) {
    // An earlier op is still unclaimed: this caller does not wait for each op before the next.
    overlapping_ = true;
    claims_in_a_row_ = 0;
    poll_sleep_ = kPollInterval;  // from the next poll on: this submit wakes the worker now
  }
  queue_.push_back(state);
  wake_worker_if_needed(lock);
  return Work(std::move(state));
}

void Executor::run_inline_through(const std::shared_ptr<Work::State>& state) {
  for (;;) {
    std::shared_ptr<Work::State> head;
    {
      std::lock_guard lock(mu_);
      // Not queued any more (running or done), or an op ahead of it runs elsewhere: the caller
      // waits for its completion instead.
      if (busy_ || queue_.empty() || queue_.front()->ticket > state->ticket) return;
      head = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    run(head);
    std::unique_lock lock(mu_);
    busy_ = false;
    if (overlapping_ && ++claims_in_a_row_ >= kClaimsToEndOverlap) overlapping_ = false;
    if (head == state) {
      // Ops queued behind this one are nobody's yet: the worker looks at them now (its claim
      // window still lets this caller take them), not at its next poll, which may be far off.
      // Call-then-wait leaves none, so makes no system call here.
      const bool wake = (!queue_.empty() || stopping_) && worker_sleeping_;
      lock.unlock();
      if (wake) cv_.notify_one();
      return;
    }
  }
}

void Executor::worker_loop() {
  std::unique_lock lock(mu_);
  uint64_t seen_submissions = submissions_;
  uint64_t watched_ticket = 0;  // the head op seen unclaimed
  Clock::time_point claim_deadline{};  // when the worker may take it
  int quiet_polls = 0;
  for (;;) {
    if (stopping_ && queue_.empty() && !busy_) return;
    if (!busy_ && !queue_.empty()) {
      // Take the head only once it has stayed unclaimed for a claim window (or when draining
      // for stop()); a caller that waits right away runs it inline in the meantime.
      uint64_t ticket = queue_.front()->ticket;
      if (ticket != watched_ticket) {
        watched_ticket = ticket;
        claim_deadline = Clock::now() + kClaimWindow;
      }
      if (!stopping_ && Clock::now() < claim_deadline) {
        worker_sleeping_ = true;
        cv_.wait_until(lock, claim_deadline);
        worker_sleeping_ = false;
        continue;
      }
      auto state = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      overlapping_ = true;
      claims_in_a_row_ = 0;
      lock.unlock();
      run(state);
      lock.lock();
      busy_ = false;
      quiet_polls = 0;
      seen_submissions = submissions_;  // what the worker takes is not claimed by the caller
      poll_sleep_ = kPollInterval;      // the caller overlaps: look often again
      continue;
    }
    // Nothing to take: the queue is empty, or the caller is running an op inline.
    if (submissions_ != seen_submissions) {
      seen_submissions = submissions_;
      quiet_polls = 0;
      // Every op submitted since the last look was claimed by the caller (ops still queued
      // behind an inline run are not: its end wakes the worker for them). A caller that
      // overlaps keeps the first poll's pace, for its next op nobody waits for.
      if (overlapping_)
        poll_sleep_ = kPollInterval;
      else if (queue_.empty())
        poll_sleep_ = std::min(poll_sleep_ * 2, kMaxPollInterval);
    } else if (++quiet_polls > kQuietPollsBeforePark && !stopping_) {
      parked_ = worker_sleeping_ = true;
      cv_.wait(lock);  // submit(), stop() or the end of an inline run with ops queued behind
      parked_ = worker_sleeping_ = false;
      quiet_polls = 0;
      seen_submissions = submissions_;
      poll_sleep_ = kPollInterval;
      continue;
    }
    worker_sleeping_ = true;
    const auto sleep = poll_sleep_;  // a copy: the wait unlocks, and submit() may change it
    cv_.wait_for(lock, sleep);
    worker_sleeping_ = false;
  }
}

void Executor::run(const std::shared_ptr<Work::State>& state) {
  // Background threads never throw: the failure is stored and rethrown by Work::wait().
  std::exception_ptr error;
  const bool timed = record_times_.load(std::memory_order_relaxed);
  Clock::time_point started = timed ? Clock::now() : Clock::time_point{};
  // A thread sleeping in Work::wait() counts its patience from here. It looks every few
  // milliseconds: a plain store costs an op nothing, a fence and a wake-up would.
  state->running.store(true, std::memory_order_release);
  auto internal = [&](const std::string& what) {
    return std::make_exception_ptr(
        Error(ErrorCode::Internal,
              "rank " + std::to_string(rank_) + ": " + state->fp.describe() + " failed: " + what));
  };
  try {
    state->body(timed ? LazyDeadline(started + state->timeout) : LazyDeadline(state->timeout));
  } catch (const Error&) {
    error = std::current_exception();
  } catch (const std::exception& e) {
    error = internal(e.what());
  } catch (...) {
    // Whatever else a body throws (a foreign library's type, an int) fails the op too: on the
    // worker, letting it escape would terminate the process.
    error = internal("an exception that is not a std::exception");
  }
  state->body.reset();
  state->started = started;
  state->ended = timed ? Clock::now() : started;
  state->error = error;
  // seq_cst store, then seq_cst load of `sleepers`; a sleeper does the mirror image (see
  // Work::block_until_finished), so either it sees `finished` or we see it and wake it.
  state->finished.store(true, std::memory_order_seq_cst);
  if (state->sleepers.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard lock(state->mu);
  state->cv.notify_all();
}

}  // namespace weft::comm
