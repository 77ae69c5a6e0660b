#include "comm/work.h"

#include <algorithm>

#include "comm/executor.h"
#include "runtime/error.h"

namespace weft::comm {

bool Work::finish_inline() {
  if (state_->finished.load(std::memory_order_acquire)) return true;
  if (auto exec = state_->executor.lock()) exec->run_inline_through(state_);
  return state_->finished.load(std::memory_order_acquire);
}

void Work::block_until_finished(Deadline deadline) {
  std::unique_lock lock(state_->mu);
  state_->sleepers.fetch_add(1, std::memory_order_seq_cst);  // pairs with Executor::run()
  bool finished = state_->cv.wait_until(
      lock, deadline, [&] { return state_->finished.load(std::memory_order_seq_cst); });
  state_->sleepers.fetch_sub(1, std::memory_order_relaxed);
  if (!finished) throw_timeout();
  if (state_->error) std::rethrow_exception(state_->error);
}

void Work::throw_timeout() {
  throw Error(ErrorCode::Timeout, "waiting for " + state_->fp.describe() +
                                      " timed out; the op is still running: abort() the "
                                      "communicator to stop it, or raise WEFT_TIMEOUT");
}

void Work::block_until_finished_in_time() {
  const auto patience = state_->timeout + kWaitGrace;
  size_t ahead = 0;
  if (auto exec = state_->executor.lock()) ahead = exec->ops_ahead_of(*state_);
  std::unique_lock lock(state_->mu);
  state_->sleepers.fetch_add(1, std::memory_order_seq_cst);  // pairs with Executor::run()
  auto finished = [&] { return state_->finished.load(std::memory_order_seq_cst); };
  auto running = [&] { return state_->running.load(std::memory_order_acquire); };
  bool started = running();
  // Not started: each op ahead of it may take its whole timeout. Once it starts (seen within
  // kStartPoll), its own patience counts from then.
  Deadline deadline = Clock::now() + patience * (started ? 1 : ahead + 1);
  while (!finished()) {
    if (!started) {
      state_->cv.wait_until(lock, std::min(deadline, Clock::now() + kStartPoll),
                            [&] { return finished() || running(); });
      if (!finished() && running()) {
        started = true;
        deadline = Clock::now() + patience;  // counted from its start, however late that was
        continue;
      }
    } else {
      state_->cv.wait_until(lock, deadline, finished);
    }
    if (!finished() && Clock::now() >= deadline) break;
  }
  state_->sleepers.fetch_sub(1, std::memory_order_relaxed);
  if (!finished()) throw_timeout();
  if (state_->error) std::rethrow_exception(state_->error);
}

void Work::wait(Deadline deadline) {
  if (!state_) throw Error(ErrorCode::InvalidArgument, "wait() on an empty Work handle");
  if (!finish_inline()) return block_until_finished(deadline);
  // Finished: `error` is no longer written, and finish_inline()'s acquire load made it visible.
  if (state_->error) std::rethrow_exception(state_->error);
}

void Work::wait() {
  if (!state_) throw Error(ErrorCode::InvalidArgument, "wait() on an empty Work handle");
  // The deadline is only computed when the op did not finish inline (a clock read costs).
  if (!finish_inline()) return block_until_finished_in_time();
  if (state_->error) std::rethrow_exception(state_->error);
}

bool Work::done() const {
  if (!state_) return false;
  return state_->finished.load(std::memory_order_acquire);
}

std::exception_ptr Work::error() const {
  if (!done()) return nullptr;
  return state_->error;
}

double Work::run_seconds() const {
  if (!done()) return 0;
  return std::chrono::duration<double>(state_->ended - state_->started).count();
}

Clock::time_point Work::started_at() const {
  return done() ? state_->started : Clock::time_point{};
}

Clock::time_point Work::ended_at() const { return done() ? state_->ended : Clock::time_point{}; }

std::string Work::describe() const { return state_ ? state_->fp.describe() : "empty Work"; }

}  // namespace weft::comm
