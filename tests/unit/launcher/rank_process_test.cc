#include "launcher/rank_process.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
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
  EXPECT_EQ(describe_wait_status(*r.wait_status()), "exited with code 4");
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

// True while `pid` exists and is not a zombie (an orphan waits for init to reap it).
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  return line.substr(line.rfind(')') + 2, 1) != "Z";
}

bool gone_within(pid_t pid, std::chrono::milliseconds timeout) {
  auto give_up = std::chrono::steady_clock::now() + timeout;
  while (alive(pid) && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(10ms);
  return !alive(pid);
}

TEST(RankProcess, StartsWithInterruptsAtTheirDefaultEvenWhenTheLauncherIgnoresThem) {
  // A shell starts `weftrun ... &` with SIGINT and SIGQUIT ignored, and exec keeps that.
  struct sigaction ignore {
  }, old_int{}, old_quit{}, old_term{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  ::sigaction(SIGQUIT, &ignore, &old_quit);
  ::sigaction(SIGTERM, &ignore, &old_term);
  // Which of SIGINT, SIGQUIT, SIGPIPE and SIGTERM (mask 0x5006) the rank starts with ignored;
  // others may be ignored by whoever started the test (a chroot's shell ignores two real-time
  // signals), and weftrun leaves those as they are.
  RankProcess r = RankProcess::start(
      shell(0, "echo ignored: $(( 0x$(grep SigIgn /proc/self/status | cut -f2) & 0x5006 ))"));
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  std::string out, err;
  run_to_end(r, out, err);
  EXPECT_EQ(out, "[rank 0] ignored: 0\n") << err;
}

TEST(RankProcess, LeadsAProcessGroupOfItsOwn) {
  RankProcess r = RankProcess::start(shell(0, "echo $$ $(cut -d' ' -f5 /proc/$$/stat)"));
  std::string out, err;
  run_to_end(r, out, err);
  EXPECT_EQ(out, "[rank 0] " + std::to_string(r.pid()) + " " + std::to_string(r.pid()) + "\n");
  EXPECT_NE(::getpgrp(), r.pid());
}

TEST(RankProcess, SignalsReachWhatTheRankStarted) {
  RankProcess r = RankProcess::start(shell(0, "sleep 30 & echo $!; wait"));
  std::string out, err;
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (out.empty() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);
    r.read_output(RankProcess::Stream::out, out);
  }
  pid_t sleeper = std::atoi(out.substr(out.find(']') + 2).c_str());
  ASSERT_GT(sleeper, 0) << out;
  r.send_signal(SIGTERM);
  run_to_end(r, out, err);
  EXPECT_EQ(describe_wait_status(*r.wait_status()), "was killed by signal SIGTERM (15)");
  EXPECT_TRUE(gone_within(sleeper, 5s)) << "the rank's child outlived the signal";
}

TEST(RankProcess, WhatARankLeavesRunningEndsWithIt) {
  RankProcess r = RankProcess::start(shell(0, "sleep 30 & echo $!; exit 0"));
  std::string out, err;
  run_to_end(r, out, err);
  EXPECT_TRUE(succeeded(*r.wait_status()));
  pid_t sleeper = std::atoi(out.substr(out.find(']') + 2).c_str());
  ASSERT_GT(sleeper, 0) << out;
  EXPECT_TRUE(gone_within(sleeper, 5s)) << "the rank's child outlived it";
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
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);  // weftrun exits 2: bad usage
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
