#include "launcher/job.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "comm/rendezvous/coordinator.h"
#include "comm/transport/shm/shm_sweep.h"
#include "launcher/exit_status.h"
#include "launcher/job_coordination.h"
#include "launcher/job_summary.h"
#include "launcher/node_layout.h"
#include "launcher/rank_environment.h"
#include "launcher/rank_process.h"
#include "launcher/shm_cleanup.h"
#include "launcher/signal_watch.h"
#include "launcher/stdin_relay.h"
#include "runtime/clock.h"
#include "runtime/error.h"

namespace weft::launcher {
namespace {

using namespace std::chrono_literals;

// After a rank failed and the grace period ran out: how long from SIGTERM to SIGKILL.
constexpr auto kTermToKill = 2s;
// After the user's signal (Ctrl-C, SIGTERM) is passed on: how long from it to SIGKILL, at least
// (--grace when longer). Time for a rank that catches the signal to save its work.
constexpr auto kSignalToKill = 10s;
// Node 0's weftrun serving the coordinator: how long it keeps serving, after its own ranks are
// done, for the ranks of other nodes to finish and leave.
constexpr std::chrono::milliseconds kOtherNodesToFinish = 30s;
// After SIGKILL, how long weftrun waits for the kernel to reap before giving up on a rank
// (a process stuck in uninterruptible sleep cannot be killed; weftrun must still exit).
constexpr auto kKillToGiveUp = 5s;

// A signal weftrun inherited as ignored would be discarded, never reaching its signalfd: a
// shell starts `weftrun ... &` with SIGINT ignored, and an ignored SIGCHLD would make the
// kernel reap the ranks before weftrun could learn how they ended. SIGHUP stays as inherited:
// `nohup weftrun ...` keeps the job running when the terminal goes.
void restore_default_dispositions() {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signo : {SIGCHLD, SIGINT, SIGTERM}) ::sigaction(signo, &default_action, nullptr);
}

// Writes all of `data` to `fd`. A closed reader (EPIPE, e.g. `weftrun ... | head`) makes the
// stream `broken`: its output is dropped from then on while the ranks keep running.
void write_all(int fd, std::string& data, bool& broken) {
  size_t done = 0;
  while (!broken && done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);  // an inherited non-blocking stdout: wait for room
    } else {
      broken = true;
    }
  }
  data.clear();
}

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// "10", "0.5", "2.25": seconds as a person writes them.
std::string format_seconds(double seconds) {
  std::ostringstream os;
  os << seconds;
  return os.str();
}

// The state of one run: ranks, the phase of the failure policy, buffered output.
class JobRunner {
 public:
  JobRunner(const LaunchOptions& options, const std::string& program_path)
      : options_(options), program_path_(program_path) {}

  int run();

 private:
  enum class Phase {
    running,      // all is well so far
    grace,        // a rank failed; the others may still exit on their own
    terminating,  // SIGTERM (or the user's signal) sent; SIGKILL at the deadline
    killing,      // SIGKILL sent; give up at the deadline
  };

  void start_ranks();
  void relay_until_all_exit(SignalWatch& signals);
  void handle_signal(const SignalWatch::Received& s);
  void reap_exited_ranks();
  void on_rank_exit(size_t index);
  void tell_other_ranks(const RankProcess& failed);
  void on_deadline();
  void stop_running_ranks(int signo);
  std::vector<int> running_ranks() const;
  void notice(const std::string& line);
  void flush_output();
  int exit_code() const;
  std::string failure_cause() const;
  std::vector<RankOutcome> outcomes() const;

  const LaunchOptions& options_;
  const std::string& program_path_;
  JobIdentity identity_;
  JobCoordination* store_ = nullptr;  // the job's store, while it runs
  std::vector<RankProcess> ranks_;
  StdinRelay stdin_relay_;
  std::vector<bool> stopped_by_launcher_;

  Phase phase_ = Phase::running;
  std::optional<Deadline> deadline_;  // when the current phase's patience runs out
  std::optional<size_t> first_failure_;
  int received_signal_ = 0;

  std::string stdout_buffer_, stderr_buffer_;
  bool stdout_broken_ = false, stderr_broken_ = false;
};

int JobRunner::run() {
  restore_default_dispositions();
  // Block the signals before the coordinator starts its threads, which inherit the mask.
  SignalWatch signals({SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGTSTP, SIGCONT});
  // Jobs killed with their launcher (or a node's reboot-less crash) left files nobody removed.
  comm::shm::sweep_dead_files();
  try {
    comm::CoordinatorOptions coordination = comm::CoordinatorOptions::from_env();
    if (options_.heartbeat_timeout_seconds)
      coordination.heartbeat_timeout = std::chrono::milliseconds(
          static_cast<long long>(*options_.heartbeat_timeout_seconds * 1000));
    JobCoordination store(options_, coordination);
    identity_ = store.identity();
    store_ = &store;
    start_ranks();
    relay_until_all_exit(signals);
    if (exit_code() == 0 && !store.let_other_nodes_finish(kOtherNodesToFinish))
      notice("the ranks of other nodes have not left the coordinator " +
             format_seconds(kOtherNodesToFinish.count() / 1000.0) +
             " s after this node's; stopping it");
    store_ = nullptr;
  } catch (...) {
    store_ = nullptr;
    // Could not start everything: no rank may outlive weftrun, and no file may be left.
    for (RankProcess& r : ranks_) r.send_signal(SIGKILL);
    ranks_.clear();  // ~RankProcess reaps
    remove_job_shm_files(kShmDir, identity_.job_id);
    throw;
  }
  remove_job_shm_files(kShmDir, identity_.job_id);

  int code = exit_code();
  if (code != 0) {
    std::string summary = failure_summary(identity_.job_id, code, failure_cause(), outcomes());
    // With one rank the summary's rank list would only repeat the cause.
    if (ranks_.size() == 1) summary = summary.substr(0, summary.find('\n') + 1);
    stderr_buffer_ += summary;
    flush_output();
  }
  return code;
}

void JobRunner::start_ranks() {
  std::vector<std::string> base_env = current_environment();
  const NodeLayout layout = node_layout(options_);
  RankEnvironmentInputs inputs;
  inputs.world_size = layout.world_size();
  inputs.local_world_size = layout.local_size;
  inputs.node_rank = layout.node_rank;
  inputs.job_id = identity_.job_id;
  inputs.token = identity_.token;
  inputs.store_addr = store_->store_addr();
  inputs.backend = options_.backend;
  inputs.timeout = options_.timeout;
  inputs.master_addr = store_->torch_master().host;
  inputs.master_port = store_->torch_master().port;

  // The node's first rank reads weftrun's stdin: as it is, or through the relay from a terminal.
  UniqueFd rank0_stdin;
  if (::isatty(STDIN_FILENO)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("creating the stdin pipe for rank 0");
    rank0_stdin = UniqueFd(fds[0]);
    stdin_relay_ = StdinRelay(STDIN_FILENO, UniqueFd(fds[1]));
  }

  ranks_.reserve(static_cast<size_t>(options_.num_ranks));
  stopped_by_launcher_.assign(static_cast<size_t>(options_.num_ranks), false);
  for (int local_rank = 0; local_rank < options_.num_ranks; ++local_rank) {
    const int rank = layout.global_rank(local_rank);
    inputs.rank = rank;
    inputs.local_rank = local_rank;
    RankLaunch launch;
    launch.rank = rank;
    launch.program_path = program_path_;
    launch.argv = options_.command;
    launch.env = rank_environment(base_env, inputs);
    if (local_rank == 0) launch.stdin_fd = rank0_stdin.valid() ? rank0_stdin.get() : STDIN_FILENO;
    launch.tag_output = options_.tag_output;
    ranks_.push_back(RankProcess::start(launch));
  }
}

void JobRunner::relay_until_all_exit(SignalWatch& signals) {
  struct Source {
    size_t index;
    RankProcess::Stream stream;
  };
  std::vector<pollfd> fds;
  std::vector<Source> sources;
  while (!running_ranks().empty()) {
    fds.assign({pollfd{signals.fd(), POLLIN, 0}, stdin_relay_.poll_entry()});
    sources.clear();
    for (size_t i = 0; i < ranks_.size(); ++i) {
      for (auto stream : {RankProcess::Stream::out, RankProcess::Stream::err}) {
        if (ranks_[i].fd(stream) < 0) continue;
        fds.push_back(pollfd{ranks_[i].fd(stream), POLLIN, 0});
        sources.push_back({i, stream});
      }
    }
    // Without a pending deadline the job may run for days: the signal fd wakes us.
    int timeout_ms = -1;
    if (deadline_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<long long>(left.count() + 1, 0, 60'000));
    }
    int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) throw_errno("poll over the ranks' output");

    constexpr size_t kFirstSource = 2;  // after the signal fd and the stdin relay
    for (size_t k = 0; ready > 0 && k < sources.size(); ++k) {
      if (fds[k + kFirstSource].revents == 0) continue;
      std::string& buffer =
          sources[k].stream == RankProcess::Stream::out ? stdout_buffer_ : stderr_buffer_;
      ranks_[sources[k].index].read_output(sources[k].stream, buffer);
    }
    flush_output();
    if (ready > 0 && fds[1].revents != 0) stdin_relay_.on_ready();
    if (ready > 0 && fds[0].revents != 0)
      while (auto s = signals.next()) handle_signal(*s);
    if (deadline_ && Clock::now() >= *deadline_) on_deadline();
    if (phase_ == Phase::killing && !deadline_) break;  // gave up on unkillable ranks
  }
  // Every rank is gone: take what is left in the pipes, unfinished last lines included.
  for (RankProcess& r : ranks_) {
    r.flush_output(RankProcess::Stream::out, stdout_buffer_);
    r.flush_output(RankProcess::Stream::err, stderr_buffer_);
  }
  flush_output();
}

void JobRunner::handle_signal(const SignalWatch::Received& s) {
  if (s.signo == SIGCHLD) {
    reap_exited_ranks();
    return;
  }
  if (s.signo == SIGTSTP || s.signo == SIGCONT) {
    // Ctrl-Z reached weftrun alone (the ranks lead process groups of their own): the job stops
    // as one, and goes on as one when the shell continues weftrun (fg, bg).
    for (const RankProcess& r : ranks_) r.send_signal(s.signo);
    if (s.signo == SIGTSTP) ::raise(SIGSTOP);
    return;
  }
  std::vector<int> running = running_ranks();
  if (received_signal_ != 0) {
    // A second interrupt means "now": do not wait for the ranks any longer.
    notice("got " + signal_name(s.signo) + " again; killing " + format_rank_set(running) +
           " with SIGKILL");
    stop_running_ranks(SIGKILL);
    phase_ = Phase::killing;
    deadline_ = Clock::now() + kKillToGiveUp;
    return;
  }
  received_signal_ = s.signo;
  if (running.empty()) return;
  auto patience = std::max<std::chrono::milliseconds>(to_ms(options_.grace_seconds), kSignalToKill);
  // The ranks lead process groups of their own, so a terminal's Ctrl-C reached weftrun alone.
  notice("got " + signal_name(s.signo) + "; passing it on to " + format_rank_set(running) +
         " (SIGKILL in " + format_seconds(static_cast<double>(patience.count()) / 1000) +
         " s if they have not exited; send it again to kill them now)");
  stop_running_ranks(s.signo);
  phase_ = Phase::terminating;
  deadline_ = Clock::now() + patience;
}

void JobRunner::reap_exited_ranks() {
  for (size_t i = 0; i < ranks_.size(); ++i) {
    if (!ranks_[i].try_reap()) continue;
    // Its last words first, then weftrun's report about it.
    ranks_[i].read_output(RankProcess::Stream::out, stdout_buffer_);
    ranks_[i].read_output(RankProcess::Stream::err, stderr_buffer_);
    on_rank_exit(i);
  }
  flush_output();
}

void JobRunner::on_rank_exit(size_t index) {
  const RankProcess& r = ranks_[index];
  int status = *r.wait_status();
  if (stopped_by_launcher_[index] || succeeded(status)) return;
  notice("rank " + std::to_string(r.rank()) + " " + describe_wait_status(status));
  // What it had in /dev/shm (set-up files, while the others wait for it) is nobody's now.
  comm::shm::sweep_job_files("weft-" + identity_.job_id + "-", std::chrono::milliseconds(0));
  if (first_failure_ || received_signal_ != 0) return;
  first_failure_ = index;
  std::vector<int> running = running_ranks();
  if (phase_ != Phase::running || running.empty()) return;
  tell_other_ranks(r);
  phase_ = Phase::grace;
  deadline_ = Clock::now() + to_ms(options_.grace_seconds);
  if (options_.grace_seconds > 0)
    notice("stopping " + format_rank_set(running) + " in " +
           format_seconds(options_.grace_seconds) +
           " s unless they exit first (--grace sets the wait)");
}

// Posts the job's death notice (kRankLostKey) naming the failed rank: the ranks still setting
// up stop waiting for it and fail naming it. It is often the only word they get: a rank that
// dies before it has joined the store leaves no connection for the server to see close.
void JobRunner::tell_other_ranks(const RankProcess& failed) {
  if (!store_) return;
  store_->post_rank_lost("rank " + std::to_string(failed.rank()) + " (pid " +
                         std::to_string(failed.pid()) + ") " +
                         describe_wait_status(*failed.wait_status()) +
                         ", as weftrun saw; weftrun is stopping the job");
}

void JobRunner::on_deadline() {
  switch (phase_) {
    case Phase::running:
      deadline_.reset();
      return;
    case Phase::grace:
      stop_running_ranks(SIGTERM);
      phase_ = Phase::terminating;
      deadline_ = Clock::now() + kTermToKill;
      return;
    case Phase::terminating:
      stop_running_ranks(SIGKILL);
      phase_ = Phase::killing;
      deadline_ = Clock::now() + kKillToGiveUp;
      return;
    case Phase::killing: {
      std::vector<int> stuck = running_ranks();
      std::string pids;
      for (const RankProcess& r : ranks_)
        if (r.running()) pids += (pids.empty() ? "" : " ") + std::to_string(r.pid());
      notice(format_rank_set(stuck) + " did not exit after SIGKILL (pids " + pids +
             "); giving up on them");
      deadline_.reset();
      return;
    }
  }
}

// Marks every running rank as stopped by weftrun and sends `signo` to its process group.
void JobRunner::stop_running_ranks(int signo) {
  for (size_t i = 0; i < ranks_.size(); ++i) {
    if (!ranks_[i].running()) continue;
    stopped_by_launcher_[i] = true;
    ranks_[i].send_signal(signo);
  }
}

std::vector<int> JobRunner::running_ranks() const {
  std::vector<int> running;
  for (const RankProcess& r : ranks_)
    if (r.running()) running.push_back(r.rank());
  return running;
}

void JobRunner::notice(const std::string& line) {
  stderr_buffer_ += "weftrun: " + line + "\n";
  flush_output();
}

void JobRunner::flush_output() {
  write_all(STDOUT_FILENO, stdout_buffer_, stdout_broken_);
  write_all(STDERR_FILENO, stderr_buffer_, stderr_broken_);
}

int JobRunner::exit_code() const {
  if (received_signal_ != 0) return 128 + received_signal_;
  if (first_failure_) return job_exit_code(*ranks_[*first_failure_].wait_status());
  // Ranks weftrun gave up on cannot count as a success.
  return running_ranks().empty() ? 0 : 128 + SIGKILL;
}

std::string JobRunner::failure_cause() const {
  if (received_signal_ != 0)
    return "weftrun received " + signal_name(received_signal_) + " and passed it on";
  if (first_failure_) {
    const RankProcess& r = ranks_[*first_failure_];
    return "rank " + std::to_string(r.rank()) + " " + describe_wait_status(*r.wait_status());
  }
  return "ranks did not exit";
}

std::vector<RankOutcome> JobRunner::outcomes() const {
  std::vector<RankOutcome> out;
  for (size_t i = 0; i < ranks_.size(); ++i)
    out.push_back({ranks_[i].rank(), ranks_[i].wait_status(), stopped_by_launcher_[i]});
  return out;
}

}  // namespace

Job::Job(LaunchOptions options, std::string program_path)
    : options_(std::move(options)), program_path_(std::move(program_path)) {}

int Job::run() { return JobRunner(options_, program_path_).run(); }

}  // namespace weft::launcher
