// Executor and Work: ordering, inline execution, progress of ops nobody waits for, parking,
// errors, deadlines and shutdown.
#include "comm/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/error.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;

Fingerprint fp(uint64_t seq) { return Fingerprint{seq, OpKind::allreduce, DType::f32}; }

// Polls `pred` until it holds or `limit` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  Deadline end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// A gate an op can block on until the test opens it.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void pass() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 10s, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

TEST(Executor, OpsRunInSubmissionOrder) {
  auto exec = Executor::create(0);
  std::vector<int> order;
  std::vector<Work> works;
  for (int i = 0; i < 50; ++i)
    works.push_back(exec->submit(fp(i), 1s, [&order, i](LazyDeadline) { order.push_back(i); }));
  for (auto& w : works) w.wait();
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
}

TEST(Executor, CallThenWaitRunsOnTheCallersThread) {
  auto exec = Executor::create(0);
  int inline_runs = 0;
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    std::thread::id ran_on;
    exec->submit(fp(i), 1s, [&](LazyDeadline) { ran_on = std::this_thread::get_id(); }).wait();
    if (ran_on == std::this_thread::get_id()) ++inline_runs;
  }
  // Only a caller descheduled for longer than the claim window loses its op to the worker.
  EXPECT_GE(inline_runs, n * 9 / 10);
}

TEST(Executor, WaitingOnALaterOpRunsTheEarlierOnesFirst) {
  auto exec = Executor::create(0);
  std::vector<int> order;
  Work a = exec->submit(fp(1), 1s, [&](LazyDeadline) { order.push_back(1); });
  Work b = exec->submit(fp(2), 1s, [&](LazyDeadline) { order.push_back(2); });
  b.wait();
  EXPECT_TRUE(a.done());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  a.wait();
}

TEST(Executor, AnOpNobodyWaitsForStillRunsOnTheWorker) {
  auto exec = Executor::create(0);
  std::atomic<bool> ran{false};
  std::thread::id ran_on;
  Work w = exec->submit(fp(1), 1s, [&](LazyDeadline) {
    ran_on = std::this_thread::get_id();
    ran = true;
  });
  // Bounded by kPollInterval + kClaimWindow (about 1 ms); generous for a loaded machine.
  EXPECT_TRUE(eventually([&] { return w.done(); }, 2s));
  EXPECT_TRUE(ran);
  EXPECT_NE(ran_on, std::this_thread::get_id());
  w.wait();
}

TEST(Executor, IdleWorkerParksAndTheNextSubmitWakesIt) {
  auto exec = Executor::create(0);
  exec->submit(fp(1), 1s, [](LazyDeadline) {}).wait();
  // kQuietPollsBeforePark + 1 polls without submissions, 1 or 2 x kPollInterval apart after
  // one claimed op.
  EXPECT_TRUE(eventually([&] { return exec->worker_parked(); }, 5s));
  Work w = exec->submit(fp(2), 1s, [](LazyDeadline) {});
  EXPECT_TRUE(eventually([&] { return w.done(); }, 2s)) << "a parked worker missed a submit";
}

TEST(Executor, OverlappedOpsAfterCallThenWaitStillStart) {
  auto exec = Executor::create(0);
  // The worker polls unasked, less often the longer this run of claimed ops lasts.
  for (int i = 0; i < 100; ++i) exec->submit(fp(i), 1s, [](LazyDeadline) {}).wait();
  std::vector<Work> works;
  for (int i = 0; i < 5; ++i) works.push_back(exec->submit(fp(100 + i), 1s, [](LazyDeadline) {}));
  for (auto& w : works) EXPECT_TRUE(eventually([&] { return w.done(); }, 2s));
}

// The worker's unasked poll slows down while the caller claims every op, and keeps its pace for
// a caller that overlaps (an op queued behind an unclaimed one, ops on the worker), until that
// caller has claimed kClaimsToEndOverlap ops in a row.
TEST(Executor, ThePollSlowsDownOnlyForACallerThatDoesNotOverlap) {
  auto exec = Executor::create(0);
  uint64_t seq = 0;
  // Claims an op by waiting for it at once, counting the claims in a row: on a loaded machine
  // the worker may still take one (the caller descheduled for a claim window), which counts as
  // overlapping.
  int claims_in_a_row = 0;
  auto claim_one = [&] {
    std::thread::id ran_on;
    exec->submit(fp(++seq), 1s, [&](LazyDeadline) { ran_on = std::this_thread::get_id(); }).wait();
    claims_in_a_row = ran_on == std::this_thread::get_id() ? claims_in_a_row + 1 : 0;
  };
  EXPECT_TRUE(eventually(
      [&] {
        claim_one();
        return exec->worker_poll_sleep() == Executor::kMaxPollInterval;
      },
      30s))
      << "the poll did not slow down to its cap while every op was claimed";

  Work a = exec->submit(fp(++seq), 1s, [](LazyDeadline) {});
  Work b = exec->submit(fp(++seq), 1s, [](LazyDeadline) {});  // behind an unclaimed op
  EXPECT_TRUE(eventually([&] { return a.done() && b.done(); }, 2s));
  a.wait();
  b.wait();
  EXPECT_TRUE(eventually([&] { return exec->worker_poll_sleep() == Executor::kPollInterval; }, 2s))
      << "an overlapping caller's next op nobody waits for would wait a slow poll";

  // Claims spread over a few of the slowest polls, fewer than kClaimsToEndOverlap: still fast.
  const Deadline spread = Clock::now() + 4 * Executor::kMaxPollInterval;
  for (int i = 0; i < Executor::kClaimsToEndOverlap / 2 && Clock::now() < spread; ++i) {
    claim_one();
    std::this_thread::sleep_for(200us);
  }
  EXPECT_EQ(exec->worker_poll_sleep(), Executor::kPollInterval);

  EXPECT_TRUE(eventually(
      [&] {
        claim_one();
        return claims_in_a_row > Executor::kClaimsToEndOverlap &&
               exec->worker_poll_sleep() > Executor::kPollInterval;
      },
      30s))
      << "the poll kept its pace after " << Executor::kClaimsToEndOverlap << " claims in a row";
}

TEST(Executor, ErrorsAreRethrownByWaitOnTheCallersThread) {
  auto exec = Executor::create(3);
  Work weft_error = exec->submit(fp(1), 1s, [](LazyDeadline) { throw Error(ErrorCode::PeerLost, "rank 2 lost"); });
  Work other = exec->submit(fp(2), 1s, [](LazyDeadline) { throw std::runtime_error("bad_alloc-ish"); });
  try {
    weft_error.wait();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
  }
  try {
    other.wait();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Internal);
    EXPECT_NE(std::string(e.what()).find("rank 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad_alloc-ish"), std::string::npos) << e.what();
  }
  EXPECT_NE(weft_error.error(), nullptr);
}

// Anything a body throws fails its op, on the worker as inline: an int escaping the worker
// thread would terminate the process.
TEST(Executor, ABodyThrowingANonStandardExceptionFailsItsOp) {
  auto exec = Executor::create(4);
  auto expect_internal = [](Work& w) {
    try {
      w.wait();
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Internal);
      EXPECT_NE(std::string(e.what()).find("rank 4"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("not a std::exception"), std::string::npos) << e.what();
    }
  };
  Work inline_op = exec->submit(fp(1), 1s, [](LazyDeadline) { throw 42; });
  expect_internal(inline_op);  // run by this thread
  Work on_worker = exec->submit(fp(2), 1s, [](LazyDeadline) { throw 42; });
  ASSERT_TRUE(eventually([&] { return on_worker.done(); }));  // nobody waits: the worker runs it
  expect_internal(on_worker);
  Work after = exec->submit(fp(3), 1s, [](LazyDeadline) {});
  EXPECT_NO_THROW(after.wait());  // the executor goes on
}

// wait() keeps WEFT_TIMEOUT (plus Work::kWaitGrace) from the op's start, as README says, even
// when the body ignores its deadline; it used to wait twice the timeout plus 10 s.
TEST(Executor, WaitGivesUpATimeoutAfterTheOpStarted) {
  auto exec = Executor::create(0);
  Gate gate;
  std::atomic<bool> started{false};
  Work stuck = exec->submit(fp(1), 500ms, [&](LazyDeadline) {
    started = true;
    gate.pass();  // ignores its deadline
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }, 2s));  // on the worker
  auto start = Clock::now();
  try {
    stuck.wait();
    FAIL() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout);
  }
  double waited = seconds_since(start);
  EXPECT_GE(waited, 1.4);  // 500 ms + the 1 s grace
  EXPECT_LT(waited, 4.0);
  gate.open();
}

// An op queued behind a slow one is not given up on while the ops ahead of it run in time.
TEST(Executor, WaitCountsAQueuedOpsPatienceFromItsStart) {
  auto exec = Executor::create(0);
  std::atomic<bool> started{false};
  Work slow = exec->submit(fp(1), 400ms, [&](LazyDeadline) {
    started = true;
    std::this_thread::sleep_for(1200ms);  // under its 400 ms + the 1 s grace
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }, 2s));
  Work behind = exec->submit(fp(2), 400ms, [](LazyDeadline) {
    std::this_thread::sleep_for(600ms);  // starts about 1.2 s after wait() is called
  });
  EXPECT_NO_THROW(behind.wait());  // 1.8 s in all: more than its own 1.4 s, counted from wait()
  slow.wait();
}

// Timed ops count their deadline from their start; untimed ones from its first read, so that an
// op that never waits reads no clock.
TEST(Executor, ATimedBodyMustFinishATimeoutAfterItStarts) {
  auto exec = Executor::create(0);
  exec->record_times(true);
  Clock::time_point before = Clock::now();
  Deadline got{};
  Work w = exec->submit(fp(1), 5s, [&](LazyDeadline d) {
    std::this_thread::sleep_for(100ms);
    got = d.get();
  });
  w.wait();
  EXPECT_GE(got, before + 5s);
  EXPECT_LE(got, Clock::now() - 100ms + 5s);
  EXPECT_GE(w.run_seconds(), 0.099);
}

TEST(Executor, AnUntimedBodysDeadlineCountsFromItsFirstRead) {
  auto exec = Executor::create(0);
  Clock::time_point before = Clock::now();
  Deadline got{}, again{};
  Work w = exec->submit(fp(1), 5s, [&](LazyDeadline d) {
    std::this_thread::sleep_for(100ms);
    got = d.get();
    std::this_thread::sleep_for(10ms);
    again = d.get();
  });
  w.wait();
  EXPECT_GE(got, before + 100ms + 5s);
  EXPECT_LE(got, Clock::now() + 5s);
  EXPECT_EQ(again, got);  // fixed once read
  EXPECT_EQ(w.run_seconds(), 0.0);
}

// Finished ops' states are reused, but only once no Work refers to them: a Work kept aside
// keeps its own result, and a new op never inherits an old one's error or timing.
TEST(Executor, AKeptWorkKeepsItsResultWhileLaterOpsRun) {
  auto exec = Executor::create(0);
  exec->record_times(true);
  Work failed = exec->submit(fp(1), 1s, [](LazyDeadline) { throw Error(ErrorCode::PeerLost, "lost"); });
  EXPECT_THROW(failed.wait(), Error);
  for (int i = 0; i < 10; ++i) exec->submit(fp(2 + i), 1s, [](LazyDeadline) {}).wait();
  EXPECT_TRUE(failed.done());
  EXPECT_NE(failed.error(), nullptr);

  Work slow = exec->submit(fp(20), 1s, [](LazyDeadline) { std::this_thread::sleep_for(200ms); });
  slow.wait();
  double slow_seconds = slow.run_seconds();
  EXPECT_GE(slow_seconds, 0.199);
  {
    Work dropped = exec->submit(fp(21), 1s, [](LazyDeadline) { throw Error(ErrorCode::Aborted, "x"); });
    EXPECT_THROW(dropped.wait(), Error);
  }
  Work next = exec->submit(fp(22), 1s, [](LazyDeadline) {});
  EXPECT_NO_THROW(next.wait());
  EXPECT_EQ(next.error(), nullptr);
  EXPECT_LT(next.run_seconds(), 0.1);  // its own timing, not the slow op's
  EXPECT_EQ(slow.run_seconds(), slow_seconds);
}

TEST(Executor, WaitBehindARunningOpTimesOutAtItsDeadline) {
  auto exec = Executor::create(0);
  Gate gate;
  std::atomic<bool> started{false};
  Work blocker = exec->submit(fp(1), 10s, [&](LazyDeadline) {
    started = true;
    gate.pass();
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }, 2s));  // the worker took it
  Work behind = exec->submit(fp(2), 10s, [](LazyDeadline) {});
  auto start = Clock::now();
  try {
    behind.wait(Clock::now() + 50ms);
    FAIL() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Timeout);
  }
  EXPECT_LT(seconds_since(start), 2.0);
  gate.open();
  behind.wait();
  blocker.wait();
}

TEST(Executor, StopRunsWhatIsQueuedAndRefusesNewOps) {
  auto exec = Executor::create(1);
  std::atomic<int> ran{0};
  std::vector<Work> works;
  for (int i = 0; i < 10; ++i) works.push_back(exec->submit(fp(i), 1s, [&](LazyDeadline) { ++ran; }));
  exec->stop();
  exec->stop();  // twice is fine
  EXPECT_EQ(ran.load(), 10);
  for (auto& w : works) EXPECT_TRUE(w.done());
  try {
    exec->submit(fp(11), 1s, [](LazyDeadline) {});
    FAIL() << "submit after stop() was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Aborted);
  }
}

TEST(Executor, WorkOutlivesItsExecutor) {
  Work w;
  {
    auto exec = Executor::create(0);
    w = exec->submit(fp(1), 1s, [](LazyDeadline) {});
  }
  EXPECT_TRUE(w.done());
  w.wait();
  EXPECT_GE(w.run_seconds(), 0.0);
}

}  // namespace
}  // namespace weft::comm
