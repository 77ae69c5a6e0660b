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

Work Executor::submit(const Fingerprint& fp, std::chrono::milliseconds timeout,
                      std::function<void()> body) {
  auto state = std::make_shared<Work::State>();
  state->fp = fp;
  state->timeout = timeout;
  state->body = std::move(body);
  state->executor = weak_from_this();
  {
    std::lock_guard lock(mu_);
    if (stopping_)
      throw Error(ErrorCode::Aborted, "rank " + std::to_string(rank_) + ": " + fp.describe() +
                                          " submitted to a communicator that is shutting down");
    queue_.push_back(state);
  }
  cv_.notify_one();
  return Work(state);
}

bool Executor::run_inline_if_next(const std::shared_ptr<Work::State>& state) {
  {
    std::lock_guard lock(mu_);
    if (busy_ || queue_.empty() || queue_.front() != state) return false;
    queue_.pop_front();
    busy_ = true;
  }
  run(state);
  {
    std::lock_guard lock(mu_);
    busy_ = false;
  }
  cv_.notify_one();  // the worker may have ops queued behind this one
  return true;
}

void Executor::worker_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return (!queue_.empty() && !busy_) || (stopping_ && queue_.empty() && !busy_); });
    if (queue_.empty()) return;  // stopping and drained
    auto state = queue_.front();
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    run(state);
    lock.lock();
    busy_ = false;
  }
}

void Executor::run(const std::shared_ptr<Work::State>& state) {
  // Background threads never throw: the failure is stored and rethrown by Work::wait().
  std::exception_ptr error;
  Clock::time_point started = Clock::now();
  try {
    state->body();
  } catch (const Error&) {
    error = std::current_exception();
  } catch (const std::exception& e) {
    error = std::make_exception_ptr(Error(ErrorCode::Internal, "rank " + std::to_string(rank_) +
                                                                   ": " + state->fp.describe() +
                                                                   " failed: " + e.what()));
  }
  std::lock_guard lock(state->mu);
  state->started = started;
  state->ended = Clock::now();
  state->body = nullptr;
  state->error = error;
  state->finished = true;
  state->cv.notify_all();
}

}  // namespace weft::comm
