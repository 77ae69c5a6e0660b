#pragma once
// Executor: runs a communicator's ops one at a time, in submission order, on a worker thread it
// owns. Work::wait() may instead run the op inline when it is next in line and nothing is
// running, which saves two thread hand-offs for the usual call-then-wait pattern.
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "comm/fingerprint.h"
#include "comm/work.h"
#include "runtime/clock.h"

namespace weft::comm {

struct Work::State {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::exception_ptr error;
  Fingerprint fp;
  std::chrono::milliseconds timeout{0};
  std::function<void()> body;              // cleared once run
  Clock::time_point started, ended;        // when the op ran (for overlap accounting)
  std::weak_ptr<class Executor> executor;  // to claim the op for inline execution
};

class Executor : public std::enable_shared_from_this<Executor> {
 public:
  static std::shared_ptr<Executor> create(int rank);
  ~Executor();  // joins the worker after the queue drains (ops are bounded by their deadlines)
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  Work submit(const Fingerprint& fp, std::chrono::milliseconds timeout, std::function<void()> body);
  // If `state` is next in line and nothing runs, runs it on the calling thread. Returns whether
  // it did.
  bool run_inline_if_next(const std::shared_ptr<Work::State>& state);
  void stop();

 private:
  explicit Executor(int rank) : rank_(rank) {}
  void worker_loop();
  void run(const std::shared_ptr<Work::State>& state);

  int rank_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Work::State>> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace weft::comm
