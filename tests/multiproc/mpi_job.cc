#include "tests/multiproc/mpi_job.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "runtime/clock.h"

namespace weft::testing {
namespace {

// Command lines of live processes that contain `marker` (other than this process).
std::vector<std::pair<pid_t, std::string>> processes_with(const std::string& marker) {
  std::vector<std::pair<pid_t, std::string>> found;
  DIR* proc = opendir("/proc");
  if (!proc) return found;
  while (dirent* e = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    // read(2), not an ifstream: a process exiting meanwhile fails the read with ESRCH, which
    // libstdc++'s filebuf throws; here it only means that process is gone.
    std::string cmd;
    if (int fd = ::open(("/proc/" + std::string(e->d_name) + "/cmdline").c_str(),
                        O_RDONLY | O_CLOEXEC);
        fd >= 0) {
      char chunk[4096];
      for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) cmd.append(chunk, size_t(n));
      ::close(fd);
    }
    if (cmd.find(marker) == std::string::npos) continue;
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    found.emplace_back(pid, cmd);
  }
  closedir(proc);
  return found;
}

MpiJobResult run(std::vector<std::string> argv, const MpiJobOptions& o, const std::string& marker) {
  MpiJobResult result;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    result.output = "pipe2 failed";
    return result;
  }
  // Each job keeps Open MPI's session directory in a folder of its own: jobs started at once
  // (ctest -j2) otherwise share /tmp/ompi.<host>.<uid>, and one job's clean-up removes it while
  // another is creating its own entry there ("A call to mkdir was unable to create ...").
  char session_base[] = "/tmp/weft-mpi-job-XXXXXX";
  if (!mkdtemp(session_base)) {
    result.output = "mkdtemp failed";
    return result;
  }
  std::fflush(nullptr);
  Clock::time_point start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // the job gets a process group of its own, so a timeout can end all of it
    dup2(out[1], 1);
    dup2(out[1], 2);
    for (const auto& [k, v] : o.env) setenv(k.c_str(), v.c_str(), 1);
    setenv("OMPI_MCA_orte_tmpdir_base", session_base, 1);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "cannot run %s\n", args[0]);
    _exit(127);
  }
  close(out[1]);
  setpgid(pid, pid);  // also here: whichever runs first
  Deadline deadline = start + o.timeout;
  int term_sent = 0;
  for (;;) {
    pollfd p{out[0], POLLIN, 0};
    int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    int n = poll(&p, 1, std::max(ms, 0) + 10);
    if (n > 0) {
      char buf[4096];
      ssize_t got = read(out[0], buf, sizeof buf);
      if (got > 0) {
        result.output.append(buf, static_cast<size_t>(got));
        continue;
      }
      break;  // every writer closed: the job ended
    }
    if (Clock::now() >= deadline) {
      result.timed_out = true;
      // SIGTERM first: mpirun then ends its ranks; SIGKILL the group if it lingers.
      kill(-pid, term_sent++ ? SIGKILL : SIGTERM);
      deadline = Clock::now() + std::chrono::seconds(3);
      if (term_sent > 2) break;
    }
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  kill(-pid, SIGKILL);  // anything of the group that outlived mpirun
  result.seconds = seconds_since(start);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);

  // Ranks outside the group (daemons) would show up here; give dying ones a moment first.
  for (int i = 0; i < 20 && !processes_with(marker).empty(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (const auto& [leftover, cmd] : processes_with(marker)) {
    kill(leftover, SIGKILL);
    result.leftovers.push_back(std::to_string(leftover) + ": " + cmd);
  }
  std::error_code ignored;
  std::filesystem::remove_all(session_base, ignored);
  return result;
}

std::string next_marker() {
  static int counter = 0;
  return "weftmpitest" + std::to_string(getpid()) + "x" + std::to_string(counter++);
}

}  // namespace

std::string MpiJobResult::summary() const {
  std::string s = "mpirun exit=" + std::to_string(exit_code) + " signal=" +
                  std::to_string(signal) + " after " + std::to_string(seconds) + " s" +
                  (timed_out ? " (TIMED OUT)" : "") + "\n" + output;
  for (const auto& l : leftovers) s += "LEFTOVER PROCESS " + l + "\n";
  return s;
}

std::map<std::string, std::string> mpi_test_env() {
  return {
      // Tests run as root in containers; Open MPI refuses root without both of these.
      {"OMPI_ALLOW_RUN_AS_ROOT", "1"},
      {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"},
      // Containers often forbid the cross-process reads (ptrace scope) of the single-copy path.
      {"OMPI_MCA_btl_vader_single_copy_mechanism", "none"},
      // Shared memory and self only: no probing of network interfaces, faster start.
      {"OMPI_MCA_btl", "self,vader"},
      {"OMPI_MCA_pml", "ob1"},
      {"WEFT_TIMEOUT", "30"},
      // Under AddressSanitizer (make test-asan): Open MPI keeps allocations until exit, and weft
      // leaves buffers to MPI on purpose after an aborted op; neither is a leak to report.
      {"ASAN_OPTIONS", "detect_leaks=0"},
  };
}

MpiJobResult run_mpi_job(const MpiJobOptions& o) {
  std::string marker = next_marker();
  std::vector<std::string> argv = {WEFT_MPIEXEC,    "--allow-run-as-root", "--oversubscribe",
                                   "-np",           std::to_string(o.ranks), WEFT_MPI_RANK_MAIN};
  argv.insert(argv.end(), o.args.begin(), o.args.end());
  argv.push_back("--marker");
  argv.push_back(marker);
  return run(argv, o, marker);
}

MpiJobResult run_without_mpirun(const MpiJobOptions& o) {
  std::string marker = next_marker();
  std::vector<std::string> argv = {WEFT_MPI_RANK_MAIN};
  argv.insert(argv.end(), o.args.begin(), o.args.end());
  argv.push_back("--marker");
  argv.push_back(marker);
  return run(argv, o, marker);
}

}  // namespace weft::testing
