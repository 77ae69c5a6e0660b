#include "launcher/rank_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "runtime/error.h"

namespace weft::launcher {
namespace {

// One read_output call takes at most this much from a pipe, so a chatty rank cannot starve
// the others (or the signal fd) in the poll loop.
constexpr size_t kReadCapBytes = 1 << 20;
// How long to wait for the child to report that execve succeeded (its status pipe closing).
constexpr int kExecReportTimeoutMs = 10'000;
// How long the destructor waits for a SIGKILLed rank to be reaped.
constexpr auto kReapTimeout = std::chrono::seconds(2);

struct Pipe {
  UniqueFd read_end, write_end;
};

Pipe make_pipe(int rank, const char* what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw_errno("creating the " + std::string(what) + " pipe for rank " + std::to_string(rank));
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the child: tells the parent why exec did not happen, then exits as a shell would.
[[noreturn]] void report_exec_failure(int status_fd, int error) {
  (void)!::write(status_fd, &error, sizeof error);
  ::_exit(127);
}

// Runs in the forked child. weftrun has other threads (the coordinator's), so between fork and
// exec only async-signal-safe calls are allowed: no allocation, no locks, no exceptions.
[[noreturn]] void exec_child(pid_t parent, int stdin_fd, int out_fd, int err_fd, int status_fd,
                             const char* path, char* const argv[], char* const envp[]) {
  auto fail = [status_fd](int error) { report_exec_failure(status_fd, error); };
  // A group of its own, which weftrun signals as a whole (the parent sets it too, so that it
  // holds from fork on, whichever of the two runs first).
  if (::setpgid(0, 0) != 0) fail(errno);
  // Die with weftrun. If weftrun died before this line, the signal will never come: check.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
  if (::getppid() != parent) ::_exit(127);
  if (::dup2(stdin_fd, STDIN_FILENO) < 0) fail(errno);
  if (::dup2(out_fd, STDOUT_FILENO) < 0) fail(errno);
  if (::dup2(err_fd, STDERR_FILENO) < 0) fail(errno);
  // A rank starts with no signal blocked or ignored whatever weftrun inherited or set: weftrun
  // blocks the signals it reads through its signalfd and ignores SIGPIPE, and a shell starts a
  // background job (`weftrun ... &`) with SIGINT and SIGQUIT ignored, which exec keeps. SIGHUP
  // is left as inherited: `nohup weftrun ...` means the ranks too.
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) fail(errno);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signo : {SIGINT, SIGQUIT, SIGTERM, SIGPIPE})
    ::sigaction(signo, &default_action, nullptr);
  // No descriptor of weftrun's (other ranks' pipes, store sockets) may leak into the rank:
  // a leaked pipe write end would keep another rank's output from ever reaching EOF.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::execve(path, argv, envp);
  report_exec_failure(status_fd, errno);
}

// Waits for the child's status pipe: EOF means execve succeeded (the pipe is close-on-exec),
// an int means it failed with that errno. Returns 0 on success.
constexpr int kExecReportTimedOut = -1;
int read_exec_report(int status_fd) {
  pollfd p{status_fd, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, kExecReportTimeoutMs);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) return kExecReportTimedOut;
  int error = 0;
  ssize_t n;
  do {
    n = ::read(status_fd, &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof error) ? error : 0;
}

}  // namespace

RankProcess::RankProcess(int rank, pid_t pid, UniqueFd out, UniqueFd err, bool tag_output)
    : rank_(rank),
      pid_(pid),
      pipes_{std::move(out), std::move(err)},
      prefixers_{LinePrefixer(rank_prefix(rank, tag_output)),
                 LinePrefixer(rank_prefix(rank, tag_output))} {}

RankProcess::RankProcess(RankProcess&& other) noexcept
    : rank_(other.rank_),
      pid_(std::exchange(other.pid_, -1)),
      wait_status_(other.wait_status_),
      pipes_{std::move(other.pipes_[0]), std::move(other.pipes_[1])},
      prefixers_{std::move(other.prefixers_[0]), std::move(other.prefixers_[1])} {}

RankProcess::~RankProcess() {
  if (pid_ <= 0 || !running()) return;
  // Only reached when weftrun unwinds early (e.g. a later rank failed to start): never leave
  // a rank running, and never wait for it without a bound.
  ::kill(-pid_, SIGKILL);
  auto give_up = std::chrono::steady_clock::now() + kReapTimeout;
  while (!try_reap() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

RankProcess RankProcess::start(const RankLaunch& launch) {
  const std::string who = "rank " + std::to_string(launch.rank);
  // Everything the child touches is prepared before fork (see exec_child).
  std::vector<char*> argv = c_strings(launch.argv);
  std::vector<char*> envp = c_strings(launch.env);
  Pipe out = make_pipe(launch.rank, "stdout");
  Pipe err = make_pipe(launch.rank, "stderr");
  Pipe status = make_pipe(launch.rank, "exec status");
  UniqueFd dev_null;
  if (launch.stdin_fd < 0) {
    dev_null = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!dev_null.valid()) throw_errno("opening /dev/null as stdin of " + who);
  }
  const int stdin_fd = launch.stdin_fd >= 0 ? launch.stdin_fd : dev_null.get();

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    throw Error(ErrorCode::Unavailable, "could not fork " + who + ": " + std::strerror(e) +
                                            "; check the process limit (ulimit -u) and memory");
  }
  if (pid == 0)
    exec_child(parent, stdin_fd, out.write_end.get(), err.write_end.get(), status.write_end.get(),
               launch.program_path.c_str(), argv.data(), envp.data());

  // Fails (harmlessly) when the child has set it itself and already exec'd.
  ::setpgid(pid, pid);
  // Only the child writes: without closing our ends the pipes would never reach EOF.
  out.write_end.reset();
  err.write_end.reset();
  status.write_end.reset();
  RankProcess process(launch.rank, pid, std::move(out.read_end), std::move(err.read_end),
                      launch.tag_output);
  if (int error = read_exec_report(status.read_end.get()); error != 0) {
    // ~RankProcess kills and reaps the child.
    std::string why =
        error == kExecReportTimedOut
            ? "did not report back within " + std::to_string(kExecReportTimeoutMs / 1000) + " s"
            : std::string("failed: ") + std::strerror(error);
    if (error == ENOEXEC) why += " (a script needs a #! line)";
    // A program the kernel refuses to run (no #! line, no permission, ...) is a mistake on the
    // command line; a machine out of memory or processes is not.
    bool out_of_resources = error == kExecReportTimedOut || error == ENOMEM || error == EAGAIN ||
                            error == EMFILE || error == ENFILE;
    throw Error(out_of_resources ? ErrorCode::Unavailable : ErrorCode::InvalidArgument,
                "could not start " + who + ": exec '" + launch.program_path + "' " + why);
  }
  for (const UniqueFd& fd : process.pipes_)
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  return process;
}

size_t RankProcess::read_output(Stream s, std::string& out) {
  UniqueFd& pipe = pipes_[static_cast<int>(s)];
  LinePrefixer& prefixer = prefixers_[static_cast<int>(s)];
  char buffer[64 * 1024];
  size_t taken = 0;
  while (pipe.valid() && taken < kReadCapBytes) {
    ssize_t n = ::read(pipe.get(), buffer, sizeof buffer);
    if (n > 0) {
      prefixer.feed(std::string_view(buffer, static_cast<size_t>(n)), out);
      taken += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // EOF (or a read error, which leaves nothing more to read either).
    pipe.reset();
    prefixer.finish(out);
  }
  return taken;
}

void RankProcess::flush_output(Stream s, std::string& out) {
  // Grandchildren may still hold the pipe open: take what is there, do not wait for EOF.
  while (fd(s) >= 0 && read_output(s, out) >= kReadCapBytes) {
  }
  pipes_[static_cast<int>(s)].reset();
  prefixers_[static_cast<int>(s)].finish(out);
}

void RankProcess::send_signal(int signo) const {
  // An unreaped rank, even a zombie, keeps its pid, and so its group's id, from being reused.
  if (pid_ > 0 && running()) ::kill(-pid_, signo);
}

bool RankProcess::try_reap() {
  if (pid_ <= 0 || !running()) return false;
  // Look without reaping first: while the rank is a zombie its group's id cannot be reused, so
  // this is the moment to kill what it left running in the group.
  siginfo_t info{};
  int r;
  do {
    r = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
  } while (r < 0 && errno == EINTR);
  if (r == 0 && info.si_pid == 0) return false;  // still running
  if (r == 0) ::kill(-pid_, SIGKILL);
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(pid_, &status, WNOHANG);
  } while (reaped < 0 && errno == EINTR);
  // ECHILD cannot happen for our own unreaped child; record it as a failure rather than wait
  // forever for a status that will never come.
  wait_status_ = reaped == pid_ ? status : W_EXITCODE(255, 0);
  return true;
}

}  // namespace weft::launcher
