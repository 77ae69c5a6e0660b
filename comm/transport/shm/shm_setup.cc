// The shared-memory transport's set-up: naming, creating and mapping the ranks' files, meeting
// through the store, and watching the peers' processes (see shm_transport.h).
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "comm/transport/shm/shm_sweep.h"
#include "comm/transport/shm/shm_transport.h"
#include "comm/transport/shm/transport_shm.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/thread_clock.h"

namespace weft::comm {
namespace shm {
namespace {

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s)
    out += (isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_') ? c : '_';
  if (out.empty()) out = "none";
  if (out.size() > 64) {  // NAME_MAX is 255; keep the name short and still unique
    char hash[17];
    snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(s));
    out = out.substr(0, 40) + "~" + hash;
  }
  return out;
}

// "weft-<job>-": what every file of the job's ranks starts with, as listed in /dev/shm.
std::string job_file_prefix(const TransportSetup& setup) {
  return "weft-" + sanitize(setup.job_id) + "-";
}

// /weft-<job>-<group>-r<rank>-p<pid>: the pid keeps a restarted job from ever opening a dead
// incarnation's file, and tells whoever finds the file later whether its owner is gone.
std::string segment_name(const TransportSetup& setup) {
  return "/" + job_file_prefix(setup) + sanitize(setup.group_tag) + "-r" +
         std::to_string(setup.rank) + "-p" + std::to_string(getpid());
}

uint64_t ring_bytes_from_env() {
  long long n = env::get_int("WEFT_SHM_RING_BYTES");
  if (n < static_cast<long long>(shm::kPage) || n > (1LL << 30) || (n & (n - 1)) != 0)
    throw Error(ErrorCode::InvalidArgument,
                "WEFT_SHM_RING_BYTES=" + std::to_string(n) +
                    " must be a power of two between 4096 and 1073741824 (default 1048576)");
  return static_cast<uint64_t>(n);
}

const TransportSetup& checked(const TransportSetup& setup) {
  if (setup.size < 1 || setup.rank < 0 || setup.rank >= setup.size)
    throw Error(ErrorCode::InvalidArgument, "shm transport: rank " + std::to_string(setup.rank) +
                                                " is outside a group of " +
                                                std::to_string(setup.size));
  if (setup.size > 1 && setup.store == nullptr)
    throw Error(ErrorCode::InvalidArgument, "shm transport: rank " + std::to_string(setup.rank) +
                                                " got no store to meet its peers through");
  return setup;
}

}  // namespace

ShmTransport::ShmTransport(const TransportSetup& setup)
    : rank_(checked(setup).rank),
      size_(setup.size),
      who_("shm transport: rank " + std::to_string(setup.rank)),
      peer_check_(std::max(1LL, env::get_int("WEFT_PEER_CHECK_MS"))),
      own_segment_(segment_name(setup), setup.rank, setup.size, ring_bytes_from_env(), who_),
      own_(&own_segment_.header()),
      arena_(setup.rank, setup.size, who_),
      ledger_(setup.size) {
  arena_.count_notices_in(&own_->direct.notices);
  try {
    connect(setup, segment_name(setup));
  } catch (const Error& e) {
    // Peers that got through set-up, and mapped my header, hear why I stop instead of waiting
    // on me until I exit.
    abort(e.what());
    if (e.code() != ErrorCode::PeerLost) throw;
    // The dead rank cannot remove its file, and no one will open it now. (Mine goes with
    // own_segment_.)
    shm::sweep_job_files(job_file_prefix(setup), kDeadPeerGrace);
    throw Error(ErrorCode::PeerLost,
                who_ + " of " + std::to_string(size_) + " stopped setting up: " + e.message());
  }
  own_segment_.unlink_name();  // connect() dropped the peers' names
  agree_single_copy();

  slots_.reserve(256);
  free_slots_.reserve(256);
  poll_fds_.reserve(size_);
  poll_ranks_.reserve(size_);
  key_ = own_->doorbell.key();
  oversubscribed_ = size_ > usable_cores();
  WEFT_DEBUG(who_ << " of " << size_ << " connected, FIFOs of " << own_->ring_bytes << " bytes, "
                  << (fences_ == shm::Fences::asymmetric ? "asymmetric" : "symmetric")
                  << " fences");
}

void ShmTransport::connect(const TransportSetup& setup, const std::string& my_name) {
  peers_.resize(size_);
  std::vector<std::string> names(size_);
  if (size_ > 1) {
    // The registered-memory socket first: a peer that reads my file's name connects to it.
    setup.store->set("shm/socket/" + std::to_string(rank_), arena_.listen(my_name));
    setup.store->set("shm/ready/" + std::to_string(rank_), my_name);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      try {
        names[r] = setup.store->get("shm/ready/" + std::to_string(r), setup.deadline);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::Timeout) throw;
        throw Error(ErrorCode::Timeout, who_ + " of " + std::to_string(size_) +
                                            " gave up waiting for rank " + std::to_string(r) +
                                            " to create its shared-memory file; is it running, "
                                            "and on this node? (" +
                                            e.message() + ")");
      }
    }
  }
  for (int r = 0; r < size_; ++r) {
    Peer& p = peers_[r];
    if (r == rank_) {  // loopback: the FIFO from me in my own file
      p.header = own_;
      continue;
    }
    try {
      p.segment = shm::PeerSegment(names[r], r, size_, rank_, who_);
      p.header = &p.segment.header();
      watch(p, r);
      arena_.connect(r, setup.store->get("shm/socket/" + std::to_string(r), setup.deadline), p.pid,
                     &p.header->direct.notices);
    } catch (const Error&) {
      // A dead rank's file or socket may be gone already: say it died.
      setup.store->check_members();
      throw;
    }
  }
  // Every rank reads the same headers, so all of the group agree.
  fences_ = shm::Fences::asymmetric;
  for (const Peer& p : peers_)
    if (p.header->asymmetric_fences == 0) fences_ = shm::Fences::symmetric;
  for (int r = 0; r < size_; ++r) {
    Peer& p = peers_[r];
    shm::RingView to_peer = r == rank_ ? own_segment_.inbound(r) : p.segment.outbound();
    shm::MailboxView mail_to_peer =
        r == rank_ ? own_segment_.inbound_mailbox(r) : p.segment.outbound_mailbox();
    p.out = shm::RingWriter(to_peer, fences_);
    p.in = shm::RingReader(own_segment_.inbound(r), fences_);
    p.mail_out = shm::MailboxWriter(mail_to_peer, fences_);
    p.mail_in = shm::MailboxReader(own_segment_.inbound_mailbox(r), fences_);
    p.out_control = to_peer.control;
    p.in_control = own_segment_.inbound(r).control;
  }
  if (size_ > 1) probe_single_copy();  // before the barrier: peers read the result after it
  if (size_ > 1) {  // barrier: nobody unlinks its file before everyone has mapped it
    std::vector<std::string> keys;
    for (int r = 0; r < size_; ++r) keys.push_back("shm/mapped/" + std::to_string(r));
    setup.store->set(keys[rank_], "1");
    try {
      setup.store->wait(keys, setup.deadline);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::Timeout) throw;
      throw Error(ErrorCode::Timeout, who_ +
                                          " gave up waiting for its peers to map its "
                                          "shared-memory file; did one of them fail? (" +
                                          e.message() + ")");
    }
  }
  // Everyone has mapped everyone: the names are no longer needed. Every rank drops every name,
  // so one killed before dropping its own leaves nothing in /dev/shm either.
  for (int r = 0; r < size_; ++r)
    if (r != rank_) shm_unlink(names[r].c_str());
  arena_.unlink_path();  // every peer has connected: they passed the barrier
  if (size_ == 1) return;
  // A peer that died as the barrier completed is named now, as a set-up failure, rather than
  // at the first message, by when ranks that stopped in set-up because of it may have exited
  // too and be the ones named.
  setup.store->check_members();
  check_liveness();
  for (int r = 0; r < size_; ++r)
    if (peers_[r].state == PeerState::exited)
      throw Error(ErrorCode::PeerLost, "rank " + std::to_string(r) + " (pid " +
                                           std::to_string(peers_[r].pid) +
                                           ") exited during set-up; check its output");
}

// Opens a pidfd on the peer's process, so check_liveness() notices when it dies.
void ShmTransport::watch(Peer& p, int r) {
  if (p.header->pid_namespace != own_->pid_namespace || own_->pid_namespace == 0) {
    // Containers sharing /dev/shm but not pids: its pid names another process here (or none).
    // Its death then shows only through the closed flag and the caller's deadlines.
    WEFT_WARN(who_ << " cannot watch rank " << r << " for crashes: it runs in another pid "
                   << "namespace");
    return;
  }
  p.pid = p.header->pid;
  if (p.pid == own_->pid) return;  // ranks are threads of this process: nothing to watch
  p.pidfd = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, p.pid, 0)));
  if (!p.pidfd) {
    if (errno == ESRCH) p.state = PeerState::exited;
    // Otherwise an old kernel or seccomp: check_liveness() falls back to kill(pid, 0).
    else
      WEFT_DEBUG(who_ << ": pidfd_open for rank " << r << " failed: " << std::strerror(errno));
  }
}

ShmTransport::~ShmTransport() {
  // Peers still waiting on us fail with PeerLost instead of waiting for their timeout.
  own_->flags.fetch_or(kFlagClosed, std::memory_order_release);
  for (Peer& p : peers_)
    if (p.header != nullptr && p.header != own_) p.header->doorbell.ring();
}

}  // namespace shm

std::unique_ptr<Transport> make_shm_transport(const TransportSetup& setup) {
  shm::sweep_dead_files();  // what ranks of jobs that are gone left on this node
  return std::make_unique<shm::ShmTransport>(setup);
}

}  // namespace weft::comm
