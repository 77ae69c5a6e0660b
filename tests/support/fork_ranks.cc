#include "tests/support/fork_ranks.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "comm/rendezvous/coordinator.h"
#include "runtime/clock.h"

namespace weft::testing {

std::string ForkRun::summary() const {
  std::string s = timed_out ? "TIMED OUT\n" : "";
  for (const auto& r : ranks)
    s += "--- rank " + std::to_string(r.rank) + " exit=" + std::to_string(r.exit_code) +
         " signal=" + std::to_string(r.signal) + " after " + std::to_string(r.seconds) + " s\n" +
         r.output;
  return s;
}

std::vector<std::string> leftover_shm_files(const std::string& job_id) {
  std::vector<std::string> found;
  std::string prefix = "weft-" + job_id;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d))
      if (std::string(e->d_name).rfind(prefix, 0) == 0) found.push_back(e->d_name);
    closedir(d);
  }
  return found;
}

ForkRun fork_ranks(const ForkOptions& o, const std::function<int(int)>& body) {
  static int counter = 0;
  ForkRun run;
  run.job_id = "t" + std::to_string(getpid()) + "x" + std::to_string(counter++);
  const std::string token = "test-token-" + run.job_id;
  // The store is served from a process of its own, forked while this one has no threads: a
  // rank forked from a process with a running thread could inherit a lock that thread held
  // (ASan's allocator lock did exactly that) and deadlock on its first allocation.
  fflush(nullptr);
  int port_pipe[2];
  if (pipe2(port_pipe, O_CLOEXEC) != 0) std::abort();
  pid_t store_pid = fork();
  if (store_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    comm::Coordinator server("127.0.0.1", 0, token);
    int port = server.port();
    if (write(port_pipe[1], &port, sizeof port) != sizeof port) _exit(1);
    for (;;) pause();  // until the test kills it
  }
  close(port_pipe[1]);
  int store_port = 0;
  if (read(port_pipe[0], &store_port, sizeof store_port) != sizeof store_port) std::abort();
  close(port_pipe[0]);
  auto start = Clock::now();

  std::vector<int> out_fds;
  std::vector<pid_t> pids;
  fflush(nullptr);
  for (int r = 0; r < o.ranks; r++) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      setenv("WEFT_RANK", std::to_string(r).c_str(), 1);
      setenv("WEFT_WORLD_SIZE", std::to_string(o.ranks).c_str(), 1);
      setenv("WEFT_LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WEFT_LOCAL_WORLD_SIZE", std::to_string(o.ranks).c_str(), 1);
      setenv("WEFT_NODE_RANK", "0", 1);
      setenv("WEFT_JOB_ID", run.job_id.c_str(), 1);
      setenv("WEFT_TOKEN", token.c_str(), 1);
      setenv("WEFT_STORE_ADDR", ("127.0.0.1:" + std::to_string(store_port)).c_str(), 1);
      setenv("WEFT_BACKEND", o.backend.c_str(), 1);
      for (const auto& [k, v] : o.env) setenv(k.c_str(), v.c_str(), 1);
      int code = 1;
      try {
        code = body(r);
      } catch (const std::exception& e) {
        fprintf(stderr, "rank %d failed: %s\n", r, e.what());
      }
      fflush(nullptr);
      _exit(code);  // skip the parent's atexit handlers and gtest teardown
    }
    close(fds[1]);
    pids.push_back(pid);
    out_fds.push_back(fds[0]);
    run.ranks.push_back(RankResult{r, pid, -1, 0, 0, ""});
  }

  // Read output, reap children, trigger fault injection, enforce the hard timeout.
  int alive = o.ranks;
  bool ready_fired = o.ready_line.empty();
  Deadline deadline = start + o.timeout;
  while (alive > 0) {
    std::vector<pollfd> pfds;
    for (int fd : out_fds) pfds.push_back({fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 20);
    for (size_t i = 0; i < pfds.size(); i++) {
      if (out_fds[i] < 0 || !(pfds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(out_fds[i], buf, sizeof buf);
      if (n > 0) run.ranks[i].output.append(buf, static_cast<size_t>(n));
      else { close(out_fds[i]); out_fds[i] = -1; }
    }
    if (!ready_fired) {
      bool all = true;
      for (const auto& r : run.ranks) all = all && r.output.find(o.ready_line) != std::string::npos;
      if (all) {
        ready_fired = true;
        if (o.on_ready) o.on_ready(pids);
      }
    }
    for (int i = 0; i < o.ranks; i++) {
      if (run.ranks[i].pid == 0) continue;
      int status = 0;
      if (waitpid(run.ranks[i].pid, &status, WNOHANG) == run.ranks[i].pid) {
        run.ranks[i].seconds = seconds_since(start);
        if (WIFEXITED(status)) run.ranks[i].exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) run.ranks[i].signal = WTERMSIG(status);
        run.ranks[i].pid = 0;
        alive--;
      }
    }
    if (alive > 0 && Clock::now() > deadline) {
      run.timed_out = true;
      for (const auto& r : run.ranks)
        if (r.pid) kill(r.pid, SIGKILL);
      deadline = Clock::time_point::max();  // now just reap them
    }
  }
  for (size_t i = 0; i < out_fds.size(); i++) {
    if (out_fds[i] < 0) continue;
    char buf[4096];
    ssize_t n;
    while ((n = read(out_fds[i], buf, sizeof buf)) > 0) run.ranks[i].output.append(buf, n);
    close(out_fds[i]);
  }
  for (int i = 0; i < o.ranks; i++) run.ranks[i].pid = pids[i];
  kill(store_pid, SIGKILL);
  waitpid(store_pid, nullptr, 0);
  return run;
}

}  // namespace weft::testing
