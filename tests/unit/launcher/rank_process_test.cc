#include "launcher/rank_process.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "launcher/exit_status.h"
#include "runtime/error.h"

namespace weft::launcher {
namespace {

using namespace std::chrono_literals;

RankLaunch shell(int rank, const std::string& script) {
  RankLaunch l;
  l.rank = rank;
  l.program_path = "/bin/sh";
  l.argv = {"sh", "-c", script};
  l.env = {"PATH=/usr/bin:/bin", "GREETING=hi"};
  return l;
}

// Relays the rank's output until it is reaped and both pipes are closed; fails after 10 s.
void run_to_end(RankProcess& r, std::string& out, std::string& err) {
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (r.running() || r.fd(RankProcess::Stream::out) >= 0 ||
         r.fd(RankProcess::Stream::err) >= 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "rank did not finish";
    pollfd fds[2] = {{r.fd(RankProcess::Stream::out), POLLIN, 0},
                     {r.fd(RankProcess::Stream::err), POLLIN, 0}};
    ::poll(fds, 2, 20);
    r.read_output(RankProcess::Stream::out, out);
    r.read_output(RankProcess::Stream::err, err);
    r.try_reap();
  }
}

TEST(RankProcess, CapturesPrefixedLinesAndTheExitStatus) {
  RankProcess r = RankProcess::start(
      shell(3, "echo \"$GREETING\"; echo oops >&2; printf 'no newline'; exit 4"));
  EXPECT_GT(r.pid(), 0);
  std::string out, err;
  run_to_end(r, out, err);
  EXPECT_EQ(out, "[rank 3] hi\n[rank 3] no newline\n");
  EXPECT_EQ(err, "[rank 3] oops\n");
  ASSERT_TRUE(r.wait_status().has_value());
  EXPECT_EQ(exit_code_of(*r.wait_status()), 4);
}

TEST(RankProcess, ReportsDeathBySignal) {
  RankProcess r = RankProcess::start(shell(0, "kill -KILL $$"));
  std::string out, err;
  run_to_end(r, out, err);
  EXPECT_EQ(describe_wait_status(*r.wait_status()), "was killed by signal SIGKILL (9)");
}

TEST(RankProcess, StartsWithSignalsUnblockedAndStdinClosed) {
  // The launcher blocks SIGTERM for its signalfd; the rank must not inherit that.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  RankProcess r = RankProcess::start(shell(1, "grep SigBlk /proc/self/status; cat; echo eof"));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  std::string out, err;
  run_to_end(r, out, err);
  EXPECT_EQ(out, "[rank 1] SigBlk:\t0000000000000000\n[rank 1] eof\n") << err;
}

TEST(RankProcess, SignalsReachTheRank) {
  RankProcess r = RankProcess::start(shell(0, "exec sleep 30"));
  std::this_thread::sleep_for(50ms);
  r.send_signal(SIGTERM);
  std::string out, err;
  run_to_end(r, out, err);
  EXPECT_EQ(describe_wait_status(*r.wait_status()), "was killed by signal SIGTERM (15)");
  r.send_signal(SIGTERM);  // after reaping: a no-op, the pid may belong to someone else now
}

TEST(RankProcess, ExecFailureIsAnErrorNamingTheRank) {
  RankLaunch l = shell(5, "");
  l.program_path = "/dev/null";  // exists, but execve refuses it
  try {
    RankProcess::start(l);
    FAIL() << "start did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
    EXPECT_NE(std::string(e.what()).find("could not start rank 5"), std::string::npos) << e.what();
  }
}

TEST(RankProcess, DestructorKillsARunningRank) {
  pid_t pid;
  {
    RankProcess r = RankProcess::start(shell(0, "exec sleep 30"));
    pid = r.pid();
    RankProcess moved(std::move(r));  // the moved-from object must not kill it early
    EXPECT_EQ(::kill(pid, 0), 0);
  }
  EXPECT_NE(::kill(pid, 0), 0);  // reaped: the pid no longer exists
}

}  // namespace
}  // namespace weft::launcher
