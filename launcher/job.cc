#include "launcher/job.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <variant>
#include <vector>

#include "comm/rendezvous/coordinator.h"
#include "comm/transport/shm/shm_sweep.h"
#include "launcher/elastic_policy.h"
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
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/preemption.h"

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
// How often weftrun asks the coordinator whether it declared a rank lost (a hung rank never
// exits, and may be the last one running).
constexpr auto kLossCheckEvery = 100ms;
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
  for (int signo : {SIGCHLD, SIGINT, SIGTERM, SIGUSR1})
    ::sigaction(signo, &default_action, nullptr);
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

bool preempted(int wait_status) {
  return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == kPreemptedExitStatus;
}

// One generation of the job: its ranks from start to exit, the phase of the failure policy,
// buffered output. Without --elastic the job is one generation.
class JobRunner {
 public:
  JobRunner(const LaunchOptions& options, const std::string& program_path,
            const JobIdentity& identity, JobCoordination& store, const NodeLayout& layout,
            int restart_count)
      : options_(options),
        program_path_(program_path),
        identity_(identity),
        store_(&store),
        layout_(layout),
        restart_count_(restart_count) {}

  // Runs the generation to its end and returns its exit code (the failure summary printed).
  // Throws Error only when it could not start (started ranks are stopped first).
  int run(SignalWatch& signals);
  // weftrun itself was told to stop (a signal passed on): no restart.
  bool interrupted() const { return received_signal_ != 0; }
  // Which rank failed first: the one the coordinator declared lost (its stream ended, or it
  // went silent), else the first to exit with a failure; -1 for none.
  int culprit() const;
  // The first rank to fail exited with status 2: it refused its flags at this size.
  bool refused_size() const;
  // Why the generation ended, in words: the coordinator's notice or weftrun's own view.
  std::string failure_cause() const;

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
  void check_coordinator_loss();
  void tell_other_ranks(const RankProcess& failed);
  void on_deadline();
  void stop_running_ranks(int signo);
  std::vector<int> running_ranks() const;
  void notice(const std::string& line);
  void flush_output();
  int exit_code() const;
  bool every_rank_preempted() const;
  std::vector<RankOutcome> outcomes() const;

  const LaunchOptions& options_;
  const std::string& program_path_;
  const JobIdentity& identity_;
  JobCoordination* store_ = nullptr;  // the job's store, while its ranks run
  const NodeLayout layout_;           // the nodes of this generation, and this node's ranks in it
  const int restart_count_;
  std::vector<RankProcess> ranks_;
  StdinRelay stdin_relay_;
  std::vector<bool> stopped_by_launcher_;

  Phase phase_ = Phase::running;
  std::optional<Deadline> deadline_;  // when the current phase's patience runs out
  std::optional<size_t> first_failure_;
  std::optional<size_t> declared_lost_;  // the rank the coordinator declared lost, still running
  std::string coordinator_lost_;  // why, once the coordinator served elsewhere stopped answering
  int received_signal_ = 0;

  std::string stdout_buffer_, stderr_buffer_;
  bool stdout_broken_ = false, stderr_broken_ = false;
};

int JobRunner::run(SignalWatch& signals) {
  JobCoordination& store = *store_;
  try {
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
  store_ = &store;  // for culprit() and failure_cause()

  int code = exit_code();
  if (code == kPreemptedExitStatus) {
    notice("the job was preempted: every rank saved its work and stopped (exit status " +
           std::to_string(code) + ")");
  } else if (code != 0) {
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
  const NodeLayout& layout = layout_;
  RankEnvironmentInputs inputs;
  inputs.world_size = layout.world_size();
  inputs.local_world_size = layout.local_size;
  inputs.node_rank = layout.node_rank;
  inputs.restart_count = restart_count_;
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

  ranks_.reserve(static_cast<size_t>(layout.local_size));
  stopped_by_launcher_.assign(static_cast<size_t>(layout.local_size), false);
  for (int local_rank = 0; local_rank < layout.local_size; ++local_rank) {
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
    // Without a pending deadline the job may run for days: the signal fd wakes us, and the
    // coordinator is asked about lost ranks now and then.
    int timeout_ms = phase_ == Phase::running ? static_cast<int>(kLossCheckEvery.count()) : -1;
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
    if (phase_ == Phase::running) check_coordinator_loss();
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
  auto patience =
      options_.preempt_timeout_seconds
          ? to_ms(*options_.preempt_timeout_seconds)
          : std::max<std::chrono::milliseconds>(to_ms(options_.grace_seconds), kSignalToKill);
  // The ranks lead process groups of their own, so a terminal's Ctrl-C reached weftrun alone.
  notice("got " + signal_name(s.signo) + "; passing it on to " + format_rank_set(running) +
         " (SIGKILL in " + format_seconds(static_cast<double>(patience.count()) / 1000) +
         " s if they have not exited, --preempt-timeout; send it again to kill them now)");
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
  // A preempted rank saved its work and stopped where its peers agreed to: they end likewise.
  if (stopped_by_launcher_[index] || succeeded(status) || preempted(status)) return;
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

// A rank the coordinator declared lost (silent past the heartbeat timeout: hung or stopped) may
// never exit, and its peers may have finished: it ends the generation as a failed rank does.
// (A rank whose stream ended has exited or is exiting: its SIGCHLD tells how.)
// A coordinator served elsewhere that stopped answering ends it too: cut off from it, this node's
// ranks could only wait for peers and answers that never come.
void JobRunner::check_coordinator_loss() {
  if (first_failure_ || received_signal_ != 0) return;
  if (std::string why = store_->coordinator_lost(); !why.empty()) {
    coordinator_lost_ = why;
    notice(why + "; stopping " + format_rank_set(running_ranks()) + " (SIGTERM, then SIGKILL " +
           format_seconds(kTermToKill.count()) + " s later)");
    stop_running_ranks(SIGTERM);
    phase_ = Phase::terminating;
    deadline_ = Clock::now() + kTermToKill;
    return;
  }
  const comm::Coordinator::Loss loss = store_->loss();
  const int lost = loss.rank;
  if (!loss.silent) return;
  auto it = std::find_if(ranks_.begin(), ranks_.end(),
                         [&](const RankProcess& r) { return r.rank() == lost && r.running(); });
  if (it == ranks_.end()) return;  // it exited: on_rank_exit reports it
  declared_lost_ = static_cast<size_t>(it - ranks_.begin());
  phase_ = Phase::grace;
  deadline_ = Clock::now() + to_ms(options_.grace_seconds);
  notice("the coordinator declared rank " + std::to_string(lost) + " lost; stopping " +
         format_rank_set(running_ranks()) + " in " + format_seconds(options_.grace_seconds) +
         " s unless they exit first (rank " + std::to_string(lost) +
         " with SIGKILL: a hung rank cannot act on SIGTERM)");
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
      if (declared_lost_ && ranks_[*declared_lost_].running()) {
        stopped_by_launcher_[*declared_lost_] = true;
        ranks_[*declared_lost_].send_signal(SIGKILL);
      }
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

bool JobRunner::every_rank_preempted() const {
  return std::all_of(ranks_.begin(), ranks_.end(), [](const RankProcess& r) {
    return r.wait_status() && preempted(*r.wait_status());
  });
}

int JobRunner::exit_code() const {
  if (every_rank_preempted()) return kPreemptedExitStatus;
  if (received_signal_ != 0) return 128 + received_signal_;
  if (first_failure_) return job_exit_code(*ranks_[*first_failure_].wait_status());
  if (declared_lost_ || !coordinator_lost_.empty()) return 1;  // job_exit_code's failure
  // Ranks weftrun gave up on cannot count as a success.
  return running_ranks().empty() ? 0 : 128 + SIGKILL;
}

int JobRunner::culprit() const {
  if (int lost = store_->loss().rank; lost >= 0) return lost;
  return first_failure_ ? ranks_[*first_failure_].rank() : -1;
}

bool JobRunner::refused_size() const {
  const std::optional<int> status =
      first_failure_ ? ranks_[*first_failure_].wait_status() : std::nullopt;
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 2;
}

std::string JobRunner::failure_cause() const {
  if (received_signal_ != 0)
    return "weftrun received " + signal_name(received_signal_) + " and passed it on";
  if (!coordinator_lost_.empty()) return coordinator_lost_;
  // A hung rank never exits: the survivors it stalled fail first, and the coordinator names it.
  const int lost = store_->loss().rank;
  if (lost >= 0 && !(first_failure_ && ranks_[*first_failure_].rank() == lost))
    return store_->loss().notice;
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

// A line from weftrun between generations (the runner has flushed the ranks' output).
void say(const std::string& line) {
  std::string text = "weftrun: " + line + "\n";
  bool broken = false;
  write_all(STDERR_FILENO, text, broken);
}

}  // namespace

Job::Job(LaunchOptions options, std::string program_path)
    : options_(std::move(options)), program_path_(std::move(program_path)) {}

int Job::run() {
  restore_default_dispositions();
  // Block the signals before the coordinator starts its threads, which inherit the mask.
  SignalWatch signals({SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGTSTP, SIGCONT});
  // Jobs killed with their launcher (or a node's reboot-less crash) left files nobody removed.
  comm::shm::sweep_dead_files();
  comm::CoordinatorOptions coordination = comm::CoordinatorOptions::from_env();
  if (options_.heartbeat_timeout_seconds)
    coordination.heartbeat_timeout = to_ms(*options_.heartbeat_timeout_seconds);
  coordination.tls = options_.tls;
  // The ranks inherit weftrun's environment: without the CA they could not reach a TLS
  // coordinator, and would say so only at their connect deadline.
  if (!options_.tls.cert.empty() && env::get("WEFT_TLS_CA").empty())
    throw Error(ErrorCode::InvalidArgument,
                "--tls-cert makes the coordinator speak TLS, but WEFT_TLS_CA is not set: export "
                "WEFT_TLS_CA=<the CA that signed " + options_.tls.cert + "> (and, with --tls-ca, "
                "WEFT_TLS_CERT and WEFT_TLS_KEY, a client certificate it signed) for the ranks");
  // One coordinator for the job's life: a restart rejoins it under a new generation.
  JobCoordination store(options_, coordination);
  const JobIdentity& identity = store.identity();

  // Only the weftrun serving the coordinator can begin a generation of it.
  if (options_.elastic && options_.node_rank == 0 && !store.serves())
    throw Error(ErrorCode::InvalidArgument,
                "--elastic needs node 0's weftrun to serve the coordinator, which begins each "
                "restart's generation, but something already serves --coordinator " +
                    *options_.coordinator +
                    " (a weft-coordinator?): stop it, or run the job without --elastic");

  NodeLayout layout = node_layout(options_);
  ElasticPolicy policy(layout.world_size(), options_.min_ranks, options_.max_restarts);
  for (int restart = 0;; ++restart) {
    JobRunner generation(options_, program_path_, identity, store, layout, restart);
    const int code = generation.run(signals);
    if (code == 0 || code == kPreemptedExitStatus || !options_.elastic || generation.interrupted())
      return code;
    if (!store.serves()) {
      say("not restarting: across nodes only node 0's weftrun, which serves the coordinator, "
          "restarts the job, with its own ranks alone; this node's part in it is over");
      return code;
    }
    const std::string cause = generation.failure_cause();
    const int size = layout.world_size();
    // Across nodes the next generation is node 0's ranks alone (JobCoordination::begin_generation).
    auto next = policy.after({size, generation.culprit(), generation.refused_size(),
                              layout.num_nodes > 1 ? layout.local_size : 0});
    if (const std::string* why_not = std::get_if<std::string>(&next)) {
      say("not restarting: " + *why_not);
      return code;
    }
    const Restart& r = std::get<Restart>(next);
    store.begin_generation();
    say("restart " + std::to_string(policy.restarts()) + " of at most " +
        std::to_string(options_.max_restarts) + ": generation " +
        std::to_string(store.generation()) + " at " + std::to_string(r.size) + " ranks" +
        (r.size == size ? " (same size)"
                        : " (was " + std::to_string(size) + ": " + r.why_size + ")") +
        "; the last one ended because " + cause);
    layout = NodeLayout{0, 1, r.size};
  }
}

}  // namespace weft::launcher
