// How weftrun ends a job, end to end: it owns its ranks' process trees, a rank that dies is
// named at once and the others are told and stopped without waiting out a long grace, what the
// dead leave in /dev/shm is removed, signals it inherited as ignored still work, and a terminal
// on stdin still reaches rank 0. Every run has the harness's hard timeout; processes a failing
// test would leave are found by their job id and killed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "comm/backend_registry.h"
#include "tests/integration/weftrun_harness.h"

namespace weft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Args = std::vector<std::string>;

// The job id from weftrun's failure summary ("weftrun: job j123abc failed ...").
std::string failed_job_id(const std::string& err) {
  std::smatch m;
  return std::regex_search(err, m, std::regex("job (j\\w+) failed")) ? m[1].str() : "";
}

// A scratch directory the ranks use to wait for each other; removed afterwards.
class WeftrunJobEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weftrun-job-end-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Shell: marks this rank as ready, then waits until `n` ranks are.
  std::string ready_and_await(int n) const {
    return "touch " + dir_.string() + "/ready.$WEFT_RANK; while [ $(ls " + dir_.string() +
           " | grep -c '^ready') -lt " + std::to_string(n) + " ]; do sleep 0.02; done; ";
  }

  fs::path dir_;
};

TEST_F(WeftrunJobEnd, NoProcessOfTheJobOutlivesIt) {
  // Every rank is a shell wrapper with a child (as a Python script has data-loader workers);
  // rank 1 is killed once all of them run. Its child, and every other rank's, must go too.
  WeftrunResult r = run_weftrun(shell(
      3,
      "sleep 600 & " + ready_and_await(3) + "if [ $WEFT_RANK = 1 ]; then kill -KILL $$; fi; wait",
      {"--grace", "0.5"}));
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.err;
  EXPECT_TRUE(contains(r.err, "weftrun: rank 1 was killed by signal SIGKILL (9)")) << r.err;
  std::string job = failed_job_id(r.err);
  ASSERT_FALSE(job.empty()) << r.err;
  EXPECT_TRUE(wait_until_job_gone(job, 3s)) << "processes of job " << job << " outlived it";
}

TEST(WeftrunJobEndRanks, ARankThatDiesBeforeSetUpEndsTheJobWithinSecondsNamingIt) {
  // Ranks 0, 1 and 3 wait in the shm transport's set-up for rank 2, which never comes; the
  // timeout is far away. weftrun must not leave them to it, nor wait out a long grace.
  WeftrunResult r = run_weftrun(
      {"-n", "4", "--timeout", "60", "--", WEFTRUN_RANK_HELPER_PATH, "dies-before-setup", "2"});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_LT(r.seconds, 5.0) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.err;
  EXPECT_TRUE(contains(r.err, "weftrun: rank 2 was killed by signal SIGKILL (9)\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "failed (exit code 137): rank 2 was killed by signal SIGKILL"))
      << r.err;
  std::string job = failed_job_id(r.err);
  ASSERT_FALSE(job.empty());
  for (const auto& entry : fs::directory_iterator("/dev/shm"))
    EXPECT_NE(entry.path().filename().string().rfind("weft-" + job + "-", 0), 0u)
        << entry.path() << " was left behind";
}

TEST(WeftrunJobEndRanks, TheOtherRanksAreToldThroughTheStoreNamingTheDeadRank) {
  // A long grace: the ranks must hear it from the store, not from a signal.
  WeftrunResult r = run_weftrun(
      {"-n", "3", "--grace", "20", "--", WEFTRUN_RANK_HELPER_PATH, "hear-rank-lost", "2"});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_LT(r.seconds, 10.0) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.err;
  std::regex heard(R"(\[rank [01]\] rank [01] heard: rank 2 \(pid \d+\) was killed by signal )"
                   R"(SIGKILL \(9\), as weftrun saw; weftrun is stopping the job)");
  std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out << r.err;
  for (const std::string& line : lines) EXPECT_TRUE(std::regex_match(line, heard)) << line;
}

TEST_F(WeftrunJobEnd, ADeadRanksSharedMemoryFilesAreRemovedWhileTheJobGoesOn) {
  // Rank 2 dies holding a set-up file; rank 0, still running, watches for it to go.
  std::string file = "/dev/shm/weft-$WEFT_JOB_ID-world-r2-p";
  std::string go = dir_.string() + "/go";
  WeftrunResult r =
      run_weftrun(shell(3,
                        "if [ $WEFT_RANK = 2 ]; then touch " + file + "$$; while [ ! -e " + go +
                            " ]; do sleep 0.02; done; kill -KILL $$; fi; "
                            "if [ $WEFT_RANK = 0 ]; then "
                            "  while ! ls " +
                            file + "* >/dev/null 2>&1; do sleep 0.02; done; touch " + go +
                            "; "
                            "  i=0; while ls " +
                            file +
                            "* >/dev/null 2>&1 && [ $i -lt 500 ]; do "
                            "    sleep 0.02; i=$((i+1)); done; "
                            "  if ls " +
                            file +
                            "* >/dev/null 2>&1; then echo left; else echo removed; fi; "
                            "fi",
                        {"--grace", "30"}));
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.err;
  EXPECT_TRUE(contains(r.out, "[rank 0] removed\n")) << r.out << r.err;
}

TEST(WeftrunJobEndRanks, FilesOfJobsThatAreGoneAreSweptAtStart) {
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string tag = std::to_string(::getpid());
  const std::string gone = "/dev/shm/weft-jgone" + tag + "-world-r2-p" + std::to_string(dead);
  const std::string live = "/dev/shm/weft-jlive" + tag + "-world-r0-p" + tag;
  std::ofstream(gone) << "x";
  std::ofstream(live) << "x";
  // A file without a written header is only swept once it is a minute old (another pid
  // namespace may be creating it: comm/transport/shm/shm_sweep.h); these are older.
  for (const std::string& f : {gone, live})
    fs::last_write_time(f, fs::file_time_type::clock::now() - std::chrono::minutes(2));
  WeftrunResult r = run_weftrun({"-n", "1", "--", "true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(gone)) << "a file whose owner is gone was left";
  EXPECT_TRUE(fs::exists(live)) << "a file of a live process was swept";
  fs::remove(gone);
  fs::remove(live);
}

TEST(WeftrunJobEndRanks, EveryBackendTheRanksAcceptIsPassedToThem) {
  for (const comm::BackendInfo& info : comm::backends()) {
    const std::string_view backend = info.name;
    WeftrunResult r =
        run_weftrun(shell(1, "echo $WEFT_BACKEND", {"--backend", std::string(backend)}));
    EXPECT_EQ(r.exit_code, 0) << backend << "\n" << r.err;
    EXPECT_EQ(r.out, "[rank 0] " + std::string(backend) + "\n");
  }
}

TEST_F(WeftrunJobEnd, InterruptsIgnoredByWhoStartedWeftrunStillWork) {
  // A shell starts `weftrun ... &` with SIGINT and SIGQUIT ignored; neither weftrun nor its
  // ranks may keep that: kill -INT must still stop the job.
  WeftrunProcess p(
      shell(2,
            "echo ignored: $(( 0x$(grep SigIgn /proc/self/status | cut -f2) & 0x5006 )); "
            "echo ready; exec sleep 600"),
      "", {}, {SIGINT, SIGQUIT});
  ASSERT_TRUE(p.wait_for_stdout("ready", 2, 10s)) << p.out();
  // SIGINT, SIGQUIT, SIGPIPE and SIGTERM (mask 0x5006) at their default in both ranks.
  EXPECT_EQ(count_of(p.out(), "ignored: 0\n"), 2) << p.out();
  p.send_signal(SIGINT);
  WeftrunResult r = p.finish(10s);
  ASSERT_FALSE(r.timed_out) << "SIGINT did not stop the job\n" << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGINT) << r.err;
}

// The state letter of /proc/PID/stat ('S' sleeping, 'T' stopped, ...), or 0 when it is gone.
char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text) || text.rfind(')') == std::string::npos) return 0;
  return text[text.rfind(')') + 2];
}

// Waits until every one of `pids` is (or is not) stopped; false at the timeout.
bool wait_until_stopped(const std::vector<pid_t>& pids, bool stopped) {
  auto give_up = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    bool all = true;
    for (pid_t pid : pids) all = all && ((process_state(pid) == 'T') == stopped);
    if (all) return true;
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(20ms);
  }
}

TEST_F(WeftrunJobEnd, CtrlZStopsTheWholeJobAndContinuingResumesIt) {
  // The ranks do not share weftrun's process group, so a terminal's Ctrl-Z reaches weftrun only.
  WeftrunProcess p(
      shell(2, "echo $$ > " + dir_.string() + "/pid.$WEFT_RANK; echo ready; exec sleep 600"));
  ASSERT_TRUE(p.wait_for_stdout("ready", 2, 10s)) << p.out();
  std::vector<pid_t> pids = {p.pid()};
  for (int rank = 0; rank < 2; ++rank) {
    pid_t pid = 0;
    std::ifstream(dir_ / ("pid." + std::to_string(rank))) >> pid;
    ASSERT_GT(pid, 0);
    pids.push_back(pid);
  }
  p.send_signal(SIGTSTP);
  EXPECT_TRUE(wait_until_stopped(pids, true)) << "weftrun and its ranks did not all stop";
  p.send_signal(SIGCONT);
  EXPECT_TRUE(wait_until_stopped(pids, false)) << "weftrun and its ranks did not all go on";
  p.send_signal(SIGTERM);
  WeftrunResult r = p.finish(10s);
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
}

// Runs `argv` as the session leader of a new terminal, which is its stdin (as in an interactive
// shell); its stdout is a pipe. Types `typed` once `prompt` shows on stdout and returns stdout
// once `until` shows, or after 10 s.
std::string run_on_a_terminal(Args strings, const std::string& prompt,
                              const std::vector<std::string>& typed, const std::string& until) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) return "no pty";
  std::string slave_name = ::ptsname(master);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return "no pipe";
  std::vector<char*> argv;
  for (auto& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();  // a new session, whose first terminal opened becomes its controlling one
    int slave = ::open(slave_name.c_str(), O_RDWR);
    if (slave < 0) ::_exit(127);
    ::dup2(slave, 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  size_t typed_count = 0;
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!contains(text, until) && std::chrono::steady_clock::now() < give_up) {
    if (contains(text, prompt) && typed_count < typed.size()) {
      if (::write(master, typed[typed_count].data(), typed[typed_count].size()) < 0) break;
      ++typed_count;
      std::this_thread::sleep_for(100ms);  // the next line only after this one is read
    }
    pollfd p{out[0], POLLIN, 0};
    char buffer[4096];
    if (::poll(&p, 1, 20) > 0) {
      ssize_t n = ::read(out[0], buffer, sizeof buffer);
      if (n <= 0) break;
      text.append(buffer, static_cast<size_t>(n));
    }
  }
  ::kill(pid, SIGKILL);  // weftrun's ranks die with it
  ::waitpid(pid, nullptr, 0);
  ::close(out[0]);
  ::close(master);
  return text;
}

Args weftrun_with(const Args& args) {
  Args argv = {WEFTRUN_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

TEST(WeftrunJobEndRanks, RankZeroReadsATerminalOnWeftrunsStdin) {
  // Ranks lead process groups of their own, that is, run as background jobs of the terminal:
  // reading it directly would stop rank 0 with SIGTTIN. weftrun reads it for rank 0.
  std::string out =
      run_on_a_terminal(weftrun_with(shell(2,
                                           "[ $WEFT_RANK = 0 ] || exit 0; echo ready; read line; "
                                           "echo \"got $line\"; cat; echo eof")),
                        "ready", {"hello\n", "more\n", "\x04"}, "[rank 0] eof");
  EXPECT_TRUE(contains(out, "[rank 0] got hello\n")) << out;
  EXPECT_TRUE(contains(out, "[rank 0] more\n")) << out;  // cat's copy
  EXPECT_TRUE(contains(out, "[rank 0] eof\n")) << out;   // Ctrl-D ends rank 0's input
}

TEST(WeftrunJobEndRanks, AWeftrunInTheBackgroundLeavesTheTerminalAlone) {
  // An interactive shell runs `weftrun ... &` in a process group of its own with the terminal
  // still on its stdin; typing at the shell must not make weftrun read it (and stop, SIGTTIN).
  Args job = shell(1, "echo ready; sleep 1; echo done");
  std::string command = "set -m; '" + std::string(WEFTRUN_PATH) + "'";
  for (size_t i = 0; i + 1 < job.size(); ++i) command += " " + job[i];
  command += " '" + job.back() + "' & wait";
  std::string out =
      run_on_a_terminal({"/bin/sh", "-c", command}, "ready", {"typed at the shell\n"}, "done");
  EXPECT_TRUE(contains(out, "[rank 0] done\n")) << out;
}

}  // namespace
}  // namespace weft::testing
