// weftrun end to end: the real binary, with shell one-liners (and a small rank program) as
// ranks. Every run has a hard timeout in the harness; every test that leaves processes behind
// on failure has them killed by the harness's destructor.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/weftrun_harness.h"

namespace weft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Args = std::vector<std::string>;

std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> lines = lines_of(text);
  std::sort(lines.begin(), lines.end());
  return lines;
}

// A scratch directory where ranks leave their pids; removed afterwards.
class WeftrunWithPids : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weftrun-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Shell that records the rank's pid (which `exec` keeps) as DIR/<rank>.pid.
  std::string record_pid() const {
    return "echo $$ > " + dir_.string() + "/$WEFT_RANK.pid.tmp && mv " + dir_.string() +
           "/$WEFT_RANK.pid.tmp " + dir_.string() + "/$WEFT_RANK.pid; ";
  }
  // Shell that waits until `n` ranks have recorded their pids (so none is stopped too early).
  std::string await_pids(int n) const {
    return "while [ $(ls " + dir_.string() + " | grep -c '\\.pid$') -lt " + std::to_string(n) +
           " ]; do sleep 0.02; done; ";
  }
  std::vector<pid_t> recorded_pids(size_t expected, std::chrono::milliseconds timeout = 10s) {
    auto give_up = std::chrono::steady_clock::now() + timeout;
    std::vector<pid_t> pids;
    while (std::chrono::steady_clock::now() < give_up) {
      pids.clear();
      for (const auto& entry : fs::directory_iterator(dir_)) {
        if (entry.path().extension() != ".pid") continue;
        pid_t pid = 0;
        std::ifstream(entry.path()) >> pid;
        if (pid > 0) pids.push_back(pid);
      }
      if (pids.size() >= expected) break;
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(pids.size(), expected) << "ranks did not record their pids";
    return pids;
  }

  fs::path dir_;
};

TEST(Weftrun, EachRankPrintsItsPrefixedLineWithItsIdentity) {
  WeftrunResult r = run_weftrun(shell(3, "echo $WEFT_RANK $WEFT_WORLD_SIZE"));
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(sorted_lines(r.out),
            (std::vector<std::string>{"[rank 0] 0 3", "[rank 1] 1 3", "[rank 2] 2 3"}));
  EXPECT_EQ(r.err, "");  // success adds nothing: benchmark output stays clean
}

TEST(Weftrun, RanksGetTheFullWeftEnvironment) {
  WeftrunResult r =
      run_weftrun(shell(2,
                        "echo $WEFT_RANK $WEFT_LOCAL_RANK $WEFT_LOCAL_WORLD_SIZE $WEFT_NODE_RANK "
                        "$WEFT_JOB_ID $WEFT_TOKEN $WEFT_STORE_ADDR $WEFT_BACKEND $WEFT_TIMEOUT",
                        {"--backend", "shm", "--timeout", "7", "--no-tag-output"}),
                  "", {"WEFT_RANK=99", "WEFT_TOKEN=stale"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = sorted_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  std::regex pattern(R"((\d) (\d) 2 0 (j\w+) ([0-9a-f]{32}) 127\.0\.0\.1:(\d+) shm 7)");
  std::smatch m0, m1;
  ASSERT_TRUE(std::regex_match(lines[0], m0, pattern)) << lines[0];
  ASSERT_TRUE(std::regex_match(lines[1], m1, pattern)) << lines[1];
  EXPECT_EQ(m0[1], "0");
  EXPECT_EQ(m0[2], "0");
  EXPECT_EQ(m1[1], "1");
  EXPECT_EQ(m1[2], "1");
  EXPECT_EQ(m0[3], m1[3]);  // one job id, one token, one store for the whole job
  EXPECT_EQ(m0[4], m1[4]);
  EXPECT_EQ(m0[5], m1[5]);
  EXPECT_GT(std::stoi(m0[5]), 0);
}

TEST(Weftrun, RanksMeetThroughTheStoreWeftrunServes) {
  WeftrunResult r = run_weftrun({"-n", "4", "--", WEFTRUN_RANK_HELPER_PATH, "store"});
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(
      sorted_lines(r.out),
      (std::vector<std::string>{"[rank 0] rank 0/4 met 4 ranks", "[rank 1] rank 1/4 met 4 ranks",
                                "[rank 2] rank 2/4 met 4 ranks", "[rank 3] rank 3/4 met 4 ranks"}));
}

TEST(Weftrun, RanksAllreduceOverEachBackend) {
  for (const char* backend : {"tcp", "shm"}) {
    WeftrunResult r = run_weftrun({"-n", "3", "--backend", backend, "--timeout", "20", "--",
                                   WEFTRUN_RANK_HELPER_PATH, "allreduce"});
    ASSERT_FALSE(r.timed_out) << backend;
    EXPECT_EQ(r.exit_code, 0) << backend << "\n" << r.out << r.err;
    for (int rank = 0; rank < 3; ++rank)
      EXPECT_TRUE(contains(r.out, "[rank " + std::to_string(rank) + "] rank " +
                                      std::to_string(rank) + " allreduce 6 over " + backend))
          << r.out;
  }
}

TEST(Weftrun, FailingRankIsNamedWithItsCodeAndTheJobExitsWith1) {
  WeftrunResult r = run_weftrun(
      shell(3, "if [ $WEFT_RANK = 1 ]; then echo bad input >&2; exit 3; fi; echo fine"));
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1);  // a failure in the job; the rank's own code is in the report
  EXPECT_TRUE(contains(r.err, "[rank 1] bad input\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "weftrun: rank 1 exited with code 3\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "failed (exit code 1): rank 1 exited with code 3")) << r.err;
  // The rank's own last words come before weftrun's report about it.
  EXPECT_LT(r.err.find("[rank 1] bad input"), r.err.find("weftrun: rank 1 exited"));
  EXPECT_EQ(count_of(r.out, "fine"), 2) << r.out;  // stdout stays on stdout
}

TEST(Weftrun, ExitCodesMeanOneThingEach) {
  struct Case {
    std::string rank1;  // what rank 1 does; rank 0 exits 0
    int expected;
  };
  const std::vector<Case> cases = {
      {"exit 0", 0},
      {"exit 7", 1},  // a failure in the job
      {"exit 1", 1},
      {"exit 2", 2},                     // the program's own usage error
      {"kill -TERM $$", 128 + SIGTERM},  // killed by a signal
      {"exit 137", 128 + SIGKILL},       // a wrapper shell reporting its child's SIGKILL
      {"exit 255", 1},
  };
  for (const Case& c : cases) {
    WeftrunResult r = run_weftrun(shell(2, "[ $WEFT_RANK = 0 ] || { " + c.rank1 + "; }"));
    ASSERT_FALSE(r.timed_out) << c.rank1;
    EXPECT_EQ(r.exit_code, c.expected) << c.rank1 << "\n" << r.err;
  }
  // A program the kernel will not run is bad usage too, said once, without an error code.
  std::string no_shebang = "/tmp/weftrun-test-no-shebang-" + std::to_string(::getpid());
  std::ofstream(no_shebang) << "echo hi\n";
  ::chmod(no_shebang.c_str(), 0755);
  WeftrunResult r = run_weftrun({"-n", "2", "--", no_shebang});
  fs::remove(no_shebang);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("weftrun: error: could not start rank 0: exec '" + no_shebang +
                            "' failed: Exec format error (a script needs a #! line)\n",
                        0),
            0u)
      << r.err;
}

TEST(Weftrun, RankKilledBySignalIsReportedAsASignal) {
  WeftrunResult r = run_weftrun(shell(2, "if [ $WEFT_RANK = 1 ]; then kill -KILL $$; fi"));
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGKILL);
  EXPECT_TRUE(contains(r.err, "weftrun: rank 1 was killed by signal SIGKILL (9)\n")) << r.err;
}

TEST_F(WeftrunWithPids, SurvivorsAreStoppedAfterTheGracePeriod) {
  WeftrunResult r = run_weftrun(shell(3,
                                      record_pid() + "if [ $WEFT_RANK = 0 ]; then " +
                                          await_pids(3) + "exit 5; fi; " + "exec sleep 600",
                                      {"--grace", "0.5"}));
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_LT(r.seconds, 5.0);  // 0.5 s grace, then SIGTERM ends `sleep` at once
  EXPECT_TRUE(contains(r.err, "weftrun: rank 0 exited with code 5")) << r.err;
  EXPECT_TRUE(contains(r.err, "ranks 1-2: stopped by weftrun, was killed by signal SIGTERM (15)"))
      << r.err;
  // Stopped ranks are summarised, not reported one by one as failures.
  EXPECT_FALSE(contains(r.err, "weftrun: rank 1 was killed")) << r.err;
  EXPECT_TRUE(wait_until_gone(recorded_pids(3), 3s));
}

TEST_F(WeftrunWithPids, RanksIgnoringSigtermGetSigkill) {
  WeftrunResult r =
      run_weftrun(shell(2,
                        record_pid() + "if [ $WEFT_RANK = 0 ]; then " + await_pids(2) +
                            "sleep 0.2; exit 1; " + "fi; trap '' TERM; exec sleep 600",
                        {"--grace", "0"}));
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_GE(r.seconds, 2.0);  // SIGTERM was ignored; SIGKILL follows 2 s later
  EXPECT_LT(r.seconds, 8.0);
  EXPECT_TRUE(contains(r.err, "rank 1: stopped by weftrun, was killed by signal SIGKILL (9)"))
      << r.err;
  EXPECT_TRUE(wait_until_gone(recorded_pids(2), 3s));
}

TEST_F(WeftrunWithPids, RanksThatExitDuringTheGracePeriodAreReportedAsTheirOwnFailures) {
  // Rank 1 notices the lost peer and exits with its own error, as a real rank does.
  WeftrunResult r = run_weftrun(
      shell(2, "if [ $WEFT_RANK = 0 ]; then exit 2; fi; sleep 0.3; echo peer lost >&2; exit 9",
            {"--grace", "10"}));
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 2);  // the first failure decides the code
  EXPECT_LT(r.seconds, 5.0);  // nobody waited for the grace period to run out
  EXPECT_TRUE(contains(r.err, "[rank 1] peer lost")) << r.err;
  EXPECT_TRUE(contains(r.err, "weftrun: rank 1 exited with code 9")) << r.err;
}

TEST_F(WeftrunWithPids, SigtermToWeftrunIsForwardedToEveryRank) {
  WeftrunProcess p(shell(2, record_pid() + "trap 'echo got TERM; exit 7' TERM; echo ready; "
                                           "while :; do sleep 0.05; done"));
  ASSERT_TRUE(p.wait_for_stdout("ready", 2, 10s)) << p.out();
  std::vector<pid_t> pids = recorded_pids(2);
  p.send_signal(SIGTERM);
  WeftrunResult r = p.finish(20s);
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGTERM);
  EXPECT_TRUE(contains(r.out, "[rank 0] got TERM")) << r.out;
  EXPECT_TRUE(contains(r.out, "[rank 1] got TERM")) << r.out;
  EXPECT_TRUE(contains(r.err, "weftrun: got SIGTERM; passing it on to ranks 0-1")) << r.err;
  EXPECT_TRUE(wait_until_gone(pids, 3s));
}

// Slurm's `--signal=B:USR1@120`: SIGUSR1 reaches every rank, ranks that save and exit 75 (as
// weft-train does when preempted) make weftrun exit 75; one that ignores the notice is killed at
// --preempt-timeout.
TEST_F(WeftrunWithPids, SigusrOneIsPassedOnAndPreemptTimeoutBoundsTheWait) {
  WeftrunProcess p(shell(2, record_pid() + "trap 'echo saving; exit 75' USR1; echo ready; "
                                           "while :; do sleep 0.05; done"));
  ASSERT_TRUE(p.wait_for_stdout("ready", 2, 10s)) << p.out();
  p.send_signal(SIGUSR1);
  WeftrunResult r = p.finish(20s);
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 75) << r.err;
  EXPECT_EQ(count_of(r.out, "saving"), 2) << r.out;
  EXPECT_TRUE(contains(r.err, "weftrun: got SIGUSR1; passing it on to ranks 0-1")) << r.err;
  EXPECT_TRUE(contains(r.err, "weftrun: the job was preempted")) << r.err;

  WeftrunProcess stubborn(shell(2, record_pid() + "trap '' USR1; echo ready; exec sleep 600",
                                {"--preempt-timeout", "0.5"}));
  ASSERT_TRUE(stubborn.wait_for_stdout("ready", 2, 10s)) << stubborn.out();
  std::vector<pid_t> pids = recorded_pids(2);
  auto signalled = std::chrono::steady_clock::now();
  stubborn.send_signal(SIGUSR1);
  r = stubborn.finish(20s);
  double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count();
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGUSR1);
  EXPECT_TRUE(contains(r.err, "SIGKILL in 0.5 s")) << r.err;
  EXPECT_GE(waited, 0.5);
  EXPECT_LT(waited, 4.0);
  EXPECT_TRUE(wait_until_gone(pids, 3s));
}

TEST_F(WeftrunWithPids, SigintToWeftrunExitsWith130) {
  WeftrunProcess p(shell(2, record_pid() + "echo ready; exec sleep 600"));
  ASSERT_TRUE(p.wait_for_stdout("ready", 2, 10s)) << p.out();
  std::vector<pid_t> pids = recorded_pids(2);
  p.send_signal(SIGINT);
  WeftrunResult r = p.finish(20s);
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_LT(r.seconds, 8.0);
  EXPECT_TRUE(wait_until_gone(pids, 3s));
}

TEST_F(WeftrunWithPids, ASecondSignalKillsRanksThatIgnoreTheFirst) {
  WeftrunProcess p(shell(2, record_pid() + "trap 'echo ignoring' TERM; echo ready; "
                                           "while :; do sleep 0.05; done"));
  ASSERT_TRUE(p.wait_for_stdout("ready", 2, 10s)) << p.out();
  std::vector<pid_t> pids = recorded_pids(2);
  p.send_signal(SIGTERM);
  ASSERT_TRUE(p.wait_for_stdout("ignoring", 2, 10s)) << p.out();
  p.send_signal(SIGTERM);
  WeftrunResult r = p.finish(20s);
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGTERM);
  EXPECT_LT(r.seconds, 8.0);  // well before the 10 s patience of the first signal
  EXPECT_TRUE(contains(r.err, "again; killing ranks 0-1 with SIGKILL")) << r.err;
  EXPECT_TRUE(wait_until_gone(pids, 3s));
}

TEST_F(WeftrunWithPids, RanksDieWithAKilledWeftrun) {
  WeftrunProcess p(shell(2, record_pid() + "echo ready; exec sleep 600"));
  ASSERT_TRUE(p.wait_for_stdout("ready", 2, 10s)) << p.out();
  std::vector<pid_t> pids = recorded_pids(2);
  p.send_signal(SIGKILL);  // no chance to clean up: PR_SET_PDEATHSIG must do it
  EXPECT_TRUE(wait_until_gone(pids, 3s));
  EXPECT_EQ(p.finish(10s).exit_code, 128 + SIGKILL);
}

TEST(Weftrun, LeftoverSharedMemoryFilesOfTheJobAreRemoved) {
  // Another job's file must survive.
  std::string foreign = "/dev/shm/weft-jforeign" + std::to_string(::getpid()) + "-world-r0";
  std::ofstream(foreign) << "x";
  for (const char* last_rank_exit : {"0", "1"}) {
    WeftrunResult r = run_weftrun(shell(
        2,
        std::string("touch /dev/shm/weft-$WEFT_JOB_ID-world-r$WEFT_RANK && echo $WEFT_JOB_ID; ") +
            "[ $WEFT_RANK = 0 ] || exit " + last_rank_exit));
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, std::atoi(last_rank_exit)) << r.err;
    std::vector<std::string> lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 2u) << r.out;
    std::string job = lines[0].substr(lines[0].find("] ") + 2);
    for (int rank = 0; rank < 2; ++rank)
      EXPECT_FALSE(fs::exists("/dev/shm/weft-" + job + "-world-r" + std::to_string(rank)))
          << "left behind by job " << job;
  }
  EXPECT_TRUE(fs::exists(foreign));
  fs::remove(foreign);
}

TEST(Weftrun, ShmFilesOfRanksStoppedDuringSetupAreRemoved) {
  // Rank 1 fails while ranks 0 and 2 wait for it in the shm transport's set-up, their files
  // still linked in /dev/shm; weftrun stops them and must clean up after them.
  WeftrunResult r = run_weftrun({"-n", "3", "--backend", "shm", "--timeout", "30", "--grace", "0.5",
                                 "--", WEFTRUN_RANK_HELPER_PATH, "lost-during-setup", "1"});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.out, "[rank 1] rank 1 saw 2 shm files of the other ranks")) << r.out;
  std::smatch job;
  ASSERT_TRUE(std::regex_search(r.err, job, std::regex("job (j\\w+) failed"))) << r.err;
  for (const auto& entry : fs::directory_iterator("/dev/shm"))
    EXPECT_NE(entry.path().filename().string().rfind("weft-" + job[1].str() + "-", 0), 0u)
        << entry.path() << " was left behind";
}

TEST(Weftrun, OutputIsRelayedWholeLinesPerStream) {
  WeftrunResult r = run_weftrun(shell(1, "echo to-out; echo to-err >&2; printf 'no newline'"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[rank 0] to-out\n[rank 0] no newline\n");
  EXPECT_EQ(r.err, "[rank 0] to-err\n");
  r = run_weftrun(shell(1, "echo plain; echo err >&2", {"--no-tag-output"}));
  EXPECT_EQ(r.out, "plain\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST(Weftrun, LinesOfDifferentRanksNeverInterleave) {
  // Three ranks race to print 20,000 long lines each.
  WeftrunResult r = run_weftrun(
      shell(3,
            "i=0; while [ $i -lt 20000 ]; do echo \"$WEFT_RANK-$i-abcdefghijklmnopqrstuvwxyz\"; "
            "i=$((i+1)); done"));
  ASSERT_FALSE(r.timed_out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::regex line(R"(\[rank (\d)\] (\d)-(\d+)-abcdefghijklmnopqrstuvwxyz)");
  std::vector<int> next(3, 0);
  int malformed = 0;
  for (const std::string& l : lines_of(r.out)) {
    std::smatch m;
    if (!std::regex_match(l, m, line) || m[1] != m[2]) {
      ++malformed;
      continue;
    }
    int rank = std::stoi(m[1]);
    EXPECT_EQ(std::stoi(m[3]), next[rank]) << "rank " << rank << "'s lines out of order";
    next[rank] = std::stoi(m[3]) + 1;
  }
  EXPECT_EQ(malformed, 0);
  EXPECT_EQ(next, (std::vector<int>{20000, 20000, 20000}));
}

TEST(Weftrun, OnlyRankZeroReadsStdin) {
  WeftrunResult r = run_weftrun(shell(2, "cat; echo done"), "hello from stdin\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(
      sorted_lines(r.out),
      (std::vector<std::string>{"[rank 0] done", "[rank 0] hello from stdin", "[rank 1] done"}));
}

struct UsageCase {
  Args args;
  std::string message;
};

TEST(Weftrun, CommandLineMistakesExitWith2AndSayWhatToFix) {
  std::string not_executable = "/tmp/weftrun-test-not-executable-" + std::to_string(::getpid());
  std::ofstream(not_executable) << "#!/bin/sh\n";
  ::chmod(not_executable.c_str(), 0644);
  const std::vector<UsageCase> cases = {
      {{}, "-n is required"},
      {{"-n", "2", "--bogus", "--", "true"}, "unknown flag '--bogus'"},
      {{"-n"}, "-n needs a value"},
      {{"-n", "0", "--", "true"}, "-n must be at least 1, got 0"},
      {{"-n", "2"}, "missing '--' and the program to run"},
      {{"-n", "2", "--"}, "no program after '--'"},
      {{"-n", "2", "true"}, "'true' comes before '--'"},
      {{"-n", "2", "--backend", "udp", "--", "true"}, "unknown backend 'udp'"},
      {{"-n", "2", "--", "weft-no-such-program"},
       "program 'weft-no-such-program' was not found on PATH"},
      {{"-n", "2", "--", not_executable}, "not executable; make it so with: chmod +x"},
  };
  for (const UsageCase& c : cases) {
    WeftrunResult r = run_weftrun(c.args);
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    EXPECT_EQ(r.exit_code, 2) << shown;
    EXPECT_EQ(r.err.rfind("weftrun: error: ", 0), 0u) << shown << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << shown << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "Run 'weftrun --help' for usage.")) << shown;
    EXPECT_EQ(r.out, "") << shown;
  }
  fs::remove(not_executable);
}

TEST(Weftrun, HelpAndHelpEnv) {
  WeftrunResult help = run_weftrun({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.out, "usage: weftrun -n N")) << help.out;
  WeftrunResult env = run_weftrun({"--help-env"});
  EXPECT_EQ(env.exit_code, 0);
  EXPECT_TRUE(contains(env.out, "WEFT_TIMEOUT")) << env.out;
  EXPECT_TRUE(contains(env.out, "WEFT_STORE_ADDR")) << env.out;
}

}  // namespace
}  // namespace weft::testing
