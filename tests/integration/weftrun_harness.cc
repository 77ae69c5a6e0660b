#include "tests/integration/weftrun_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace weft::testing {
namespace {

using Clock = std::chrono::steady_clock;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("weftrun harness: ") + what + " failed");
}

}  // namespace

WeftrunProcess::WeftrunProcess(const std::vector<std::string>& args, const std::string& input,
                               const std::vector<std::string>& extra_env,
                               const std::vector<int>& ignored_signals)
    : WeftrunProcess(Program{WEFTRUN_PATH}, args, input, extra_env, ignored_signals) {}

WeftrunProcess::WeftrunProcess(const Program& program, const std::vector<std::string>& args,
                               const std::string& input,
                               const std::vector<std::string>& extra_env,
                               const std::vector<int>& ignored_signals) {
  int out[2], err[2], in[2];
  check(::pipe2(out, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0 && ::pipe2(in, O_CLOEXEC) == 0,
        "pipe2");
  std::vector<std::string> argv_strings = {program.path};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  // extra_env first: getenv() returns the first of duplicate names.
  std::vector<std::string> env_strings = extra_env;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  std::vector<char*> argv, envp;
  for (auto& s : argv_strings) argv.push_back(s.data());
  for (auto& s : env_strings) envp.push_back(s.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);

  started_ = Clock::now();
  pid_ = ::fork();
  check(pid_ >= 0, "fork");
  if (pid_ == 0) {
    // Its own process group: signals the tests send cannot hit the test runner, and the
    // destructor can kill weftrun and every rank at once.
    ::setpgid(0, 0);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // A test runner started in the background ('ctest &') ignores SIGINT, and ignored signals
    // are inherited: give weftrun the dispositions a terminal would.
    for (int s : {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(s, SIG_DFL);
    for (int s : ignored_signals) ::signal(s, SIG_IGN);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also here, so the group exists before we might signal it
  ::close(out[1]);
  ::close(err[1]);
  ::close(in[0]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  // Inputs are small (below the pipe's capacity), so this write cannot block.
  if (!input.empty())
    check(::write(in[1], input.data(), input.size()) == static_cast<ssize_t>(input.size()),
          "writing stdin");
  ::close(in[1]);
}

WeftrunProcess::~WeftrunProcess() {
  if (!reaped_ && pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);  // SIGKILL cannot be ignored: this returns promptly
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void WeftrunProcess::pump(int timeout_ms) {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  if (::poll(fds, 2, timeout_ms) <= 0) return;
  std::string* sinks[2] = {&result_.out, &result_.err};
  int* fd_slots[2] = {&out_fd_, &err_fd_};
  char buffer[65536];
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0 || fds[i].revents == 0) continue;
    ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
    if (n > 0) {
      sinks[i]->append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(*fd_slots[i]);
      *fd_slots[i] = -1;
    }
  }
}

bool WeftrunProcess::wait_for_stdout(const std::string& text, int count,
                                     std::chrono::milliseconds timeout) {
  return wait_for(result_.out, text, count, timeout);
}

bool WeftrunProcess::wait_for_stderr(const std::string& text, int count,
                                     std::chrono::milliseconds timeout) {
  return wait_for(result_.err, text, count, timeout);
}

bool WeftrunProcess::wait_for(const std::string& stream, const std::string& text, int count,
                              std::chrono::milliseconds timeout) {
  auto give_up = Clock::now() + timeout;
  while (count_of(stream, text) < count) {
    if (Clock::now() >= give_up || (out_fd_ < 0 && err_fd_ < 0)) return false;
    pump(20);
  }
  return true;
}

void WeftrunProcess::send_signal(int signo) const {
  if (!reaped_) ::kill(pid_, signo);
}

WeftrunResult WeftrunProcess::finish(std::chrono::milliseconds timeout) {
  auto give_up = Clock::now() + timeout;
  // Once weftrun is gone, a straggler holding a pipe open gets a moment, not forever.
  std::optional<Clock::time_point> pipes_give_up;
  while (!reaped_ || ((out_fd_ >= 0 || err_fd_ >= 0) && Clock::now() < *pipes_give_up)) {
    if (!reaped_ && Clock::now() >= give_up) {
      result_.timed_out = true;
      ::kill(-pid_, SIGKILL);
    }
    pump(20);
    int status = 0;
    if (!reaped_ && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      result_.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
      result_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pipes_give_up = Clock::now() + std::chrono::seconds(2);
    }
  }
  return result_;
}

WeftrunResult run_weftrun(const std::vector<std::string>& args, const std::string& input,
                          const std::vector<std::string>& extra_env) {
  return WeftrunProcess(args, input, extra_env).finish();
}

bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!stat || !std::getline(stat, text)) return false;
  size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return false;
  char state = text[paren + 2];
  return state != 'Z' && state != 'X';
}

bool wait_until_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout) {
  auto give_up = Clock::now() + timeout;
  for (;;) {
    bool any = false;
    for (pid_t p : pids) any = any || process_alive(p);
    if (!any) return true;
    if (Clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<pid_t> processes_of_job(const std::string& job_id) {
  const std::string entry = "WEFT_JOB_ID=" + job_id;
  std::vector<pid_t> pids;
  for (const auto& dir : std::filesystem::directory_iterator("/proc")) {
    std::string name = dir.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream environ_file(dir.path() / "environ", std::ios::binary);
    for (std::string var; std::getline(environ_file, var, '\0');) {
      if (var != entry) continue;
      pid_t pid = std::stoi(name);
      if (process_alive(pid)) pids.push_back(pid);
      break;
    }
  }
  return pids;
}

bool wait_until_job_gone(const std::string& job_id, std::chrono::milliseconds timeout) {
  auto give_up = Clock::now() + timeout;
  while (!processes_of_job(job_id).empty()) {
    if (Clock::now() >= give_up) {
      for (pid_t pid : processes_of_job(job_id)) ::kill(pid, SIGKILL);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::vector<std::string> shell(int ranks, const std::string& script,
                               const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"-n", std::to_string(ranks)};
  args.insert(args.end(), flags.begin(), flags.end());
  args.insert(args.end(), {"--", "sh", "-c", script});
  return args;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace weft::testing
