// Shared-memory transport: ranks on one node move bytes through FIFOs in /dev/shm.
//
// Layout. Each rank owns one file, /dev/shm/weft-<job>-<group>-r<rank>-p<pid>: a header (pid,
// doorbell, abort/closed flags, abort reason) and one inbound FIFO per sender, itself included
// (a loopback FIFO makes send-to-self work like any other peer). Rank A sends to B by writing
// into the FIFO "from A" in B's file, so each FIFO has exactly one producer and one consumer.
// The pid in the name keeps a restarted job from ever opening a dead incarnation's file.
//
// Set-up: remove files whose owners are gone (shm_sweep.h); create, size (fallocate: a full
// /dev/shm is an error now, not a SIGBUS later) and map my file; publish its name in the store;
// map every peer's header and my FIFO in its file; barrier; unlink every rank's file. From then
// on the files live only as mappings, so nothing is left in /dev/shm even when a rank is killed
// with SIGKILL. A rank that dies before that is heard through the store (PeerLost, see
// kRankLostKey); its peers then remove its file as they stop.
//
// Stream. A message is its FrameHeader followed by the payload, back to back. (Padding payloads
// to cache-line boundaries measured no faster here.) Requests to or from one peer form a
// FIFO per direction; only the head of each moves. Copies are published to the other side every
// kChunkBytes (and at the end of each batch), so the consumer copies out one chunk while the
// producer writes the next, and a small message becomes visible whole.
//
// Mailbox. A message whose header and payload fit a mailbox slot (about 2 KiB) skips the FIFO:
// the sender copies it whole into the next slot of the mailbox beside the FIFO and stamps the
// slot with the message's number on that path (see shm::MailboxWriter). The receiver polls the
// stamp, which shares a cache line with the header, so a small message reaches it in one
// cache-line transfer instead of two (FIFO position, then data): the latency of small
// collectives. Which path a message takes depends on its size only; if the two sides' sizes
// disagree, the receiver finds the message on the other path and reports the mismatch.
//
// Waking. After publishing into a peer's FIFO or consuming from one (which frees space the peer
// may wait for) we nudge the peer's doorbell: a futex call only if the peer sleeps, otherwise
// one read of a cache line we already hold. A waiting rank spins a few microseconds on the
// FIFO positions (unless ranks outnumber cores), then yields its core (a peer waiting to run
// gets it) for a few tens of microseconds, or up to a millisecond while other tasks take the
// core when it yields, then sleeps on its doorbell. Liveness checks (a pidfd poll) happen only
// on the way to sleep, so a message costs no system call.
//
// Failure. abort() sets a flag and reason in my header and rings everyone; peers fail all
// requests with Aborted when they see it. A peer process that exits (pidfd becomes readable)
// or destroys its transport (closed flag) fails the requests involving it with PeerLost, after
// delivering whatever it had completely written.
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "comm/transport/shm/shm_ring.h"
#include "comm/transport/shm/shm_sweep.h"
#include "comm/transport/shm/transport_shm.h"
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/cpu_relax.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {

using shm::kFlagAborted;
using shm::kFlagClosed;
using shm::kReasonBytes;
using shm::SegmentHeader;

constexpr size_t kHeader = sizeof(FrameHeader);

// Publish and nudge after at most this many bytes, so producer and consumer copy in parallel.
constexpr size_t kChunkBytes = 64 * 1024;
// Per pass of the progress loop each direction of each peer moves at most this much, so sends
// and receives interleave and data is read soon after it was written (still in cache).
constexpr size_t kPassBytes = 256 * 1024;
// How a waiting rank waits (see wait_for_progress): first it spins, for a peer running on
// another core; then it yields its core, for a peer waiting to run (ranks outnumber cores, or
// other work shares them); then it sleeps on its doorbell. A system call costs about 2 us on
// these machines, so the first phase makes none.
constexpr std::chrono::nanoseconds kSpin = std::chrono::microseconds(5);
constexpr unsigned kSpinUnclocked = 64;
// The yield phase lasts kYieldAlone past the last yield that gave the core to another task,
// and kYieldShared at most. A yield that returns within kYieldSwitched ran nothing else (one
// that finds nobody to run takes about 0.5 us here): nobody else wants this core, so after
// kYieldAlone of those the rank sleeps, and the core goes idle, where the kernel can move a
// runnable rank onto it. While the core is shared, a yield hands it to a peer as a sleep
// would, but leaves out the futex wake-up the peer then makes and the sleeper's fence: with 4
// ranks on 2 cores, sleeping at once made allreduce 1.3x (16 MiB) to 3.7x (8 B) slower.
constexpr std::chrono::nanoseconds kYieldAlone = std::chrono::microseconds(50);
constexpr std::chrono::nanoseconds kYieldShared = std::chrono::milliseconds(1);
constexpr std::chrono::nanoseconds kYieldSwitched = std::chrono::microseconds(2);
// How long a rank that stops because a peer died waits for that peer's process to be gone, so
// that it can remove the peer's file (see shm::sweep_job_files). The other survivors' files keep
// it waiting to the end, so it is short: a dead process is gone moments after its sockets close.
constexpr auto kDeadPeerGrace = std::chrono::milliseconds(200);

// Small messages go through the mailbox, larger ones through the FIFO. The choice depends on
// the size alone, so both ends make it alike; when they disagree the sizes differ, and the
// receiver still finds the message on the other path and reports the mismatch.
bool fits_mailbox(size_t bytes) { return bytes <= shm::kMailboxBodyBytes - kHeader; }

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

// Error::what() is "<Code>: <message>"; re-raising an error keeps its code, not the prefix.
std::string message_of(const Error& e) {
  std::string what = e.what();
  std::string prefix = std::string(error_code_name(e.code())) + ": ";
  return what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
}

// CPUs this process may run on.
int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

// A pidfd: becomes readable when its process exits.
class PidFd {
 public:
  PidFd() = default;
  PidFd(PidFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  PidFd& operator=(PidFd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~PidFd() {
    if (fd_ >= 0) close(fd_);
  }
  // False (errno set) when the kernel cannot give one.
  bool open(int pid) {
    fd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    return fd_ >= 0;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

enum class SlotState : uint8_t { free, pending, done, failed };

// One request. Slots are reused (the id carries a generation), so the steady state allocates
// nothing; requests of one peer and direction are chained through `next` in posting order.
struct Slot {
  uint32_t generation = 1;
  SlotState state = SlotState::free;
  bool is_send = false;
  int peer = -1;
  std::byte* data = nullptr;
  size_t bytes = 0;
  Fingerprint fp;
  size_t moved = 0;  // stream bytes moved so far: header, then payload
  bool via_mailbox = false;  // small enough for a mailbox slot (see fits_mailbox())
  int32_t next = -1;
  std::byte header[kHeader] = {};  // the frame header as sent / as received
  ErrorCode error_code = ErrorCode::Internal;
  std::string error;
};

struct Queue {
  int32_t head = -1;
  int32_t tail = -1;
  bool empty() const { return head < 0; }
};

enum class PeerState { alive, exited, closed };

struct Peer {
  shm::PeerSegment segment;         // its file (unmapped for the loopback peer)
  SegmentHeader* header = nullptr;  // its file's header (mine for the loopback peer)
  shm::RingWriter out;              // my FIFO in its file
  shm::RingReader in;               // its FIFO in my file
  shm::MailboxWriter mail_out;      // my mailbox in its file
  shm::MailboxReader mail_in;       // its mailbox in my file
  // Messages completed each way, whichever path they took; message k's mailbox stamp is k.
  uint64_t sent = 0;
  uint64_t received = 0;
  Queue sends;
  Queue recvs;
  size_t unannounced = 0;  // bytes moved but not yet published to it
  int pid = 0;             // 0: not watched (another pid namespace)
  PidFd pidfd;
  PeerState state = PeerState::alive;
};

class ShmTransport final : public Transport {
 public:
  explicit ShmTransport(const TransportSetup& setup);
  ~ShmTransport() override;
  ShmTransport(const ShmTransport&) = delete;
  ShmTransport& operator=(const ShmTransport&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "shm"; }
  Request isend(int peer, const void* data, size_t bytes, const Fingerprint& fp) override;
  Request irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) override;
  bool test(Request r) override;
  void wait_for_progress(const LazyDeadline& until) override;
  void abort(const std::string& reason) override { abort_with(ErrorCode::Aborted, reason); }
  void abort_with(ErrorCode code, const std::string& reason) override;

 private:
  void connect(const TransportSetup& setup, const std::string& my_name);
  void watch(Peer& p, int r);

  Request post(bool is_send, int peer, std::byte* data, size_t bytes, const Fingerprint& fp);
  Slot& lookup(Request r);
  void retire(Slot& s);
  void push(Queue& q, int32_t idx);
  void pop(Queue& q);

  void progress_all(const Slot* target);
  bool progress_sends(Peer& p, size_t budget);
  bool progress_recvs(Peer& p, size_t budget);
  bool progress_mailbox_send(Peer& p, Slot& s);
  const std::byte* mailbox_message(Peer& p);
  bool head_recv_can_progress(Peer& p);
  void complete(Peer& p, Slot& s);
  bool reject_bad_frame(Peer& p, Slot& s);
  void check_frame_of(Slot& s);
  void account(Peer& p, size_t moved);
  void announce(Peer& p);
  bool can_progress();
  bool progress_expected() { return own_->doorbell.key() != key_ || can_progress(); }

  void check_own_abort();
  void check_flags();
  void check_liveness();
  void fail(Slot& s, ErrorCode code, std::string message);
  void fail_queue(Queue& q, ErrorCode code, const std::function<std::string(const Slot&)>& msg);
  void fail_everything();
  std::string lost_message(int peer, const Slot& s) const;

  const int rank_;
  const int size_;
  const std::string who_;  // "shm transport: rank R", for messages
  std::chrono::milliseconds peer_check_;

  shm::OwnSegment own_segment_;
  SegmentHeader* own_;
  std::vector<Peer> peers_;  // by rank; peers_[rank_] is the loopback

  std::vector<Slot> slots_;
  std::vector<int32_t> free_slots_;
  size_t pending_ = 0;  // slots in a queue

  uint32_t key_ = 0;        // my doorbell as read before the last full progress pass
  uint32_t flags_key_ = 0;  // my doorbell when peers' flags were last read
  bool flags_read_ = false;
  bool idle_ = false;  // the last pass found nothing to move
  size_t unretired_ = 0;  // requests done or failed that test() has not yet reported
  std::vector<pollfd> poll_fds_;
  std::vector<int> poll_ranks_;
  Deadline next_liveness_check_{};
  // More ranks than cores to run them: a waiting rank yields at once instead of spinning,
  // since the peer it waits for may need this very core (spinning 5 us first made an 8-byte
  // allreduce on 4 ranks and 2 cores about 5x slower).
  bool oversubscribed_ = false;
  shm::Fences fences_ = shm::Fences::symmetric;  // how publishing pairs with sleeping

  // Failure that ends everything: this rank's abort() or a peer's.
  bool failed_ = false;
  std::string failure_;
  ErrorCode failure_code_ = ErrorCode::Aborted;
  // abort() may run on any thread: 0 = not aborted, 1 = writing the reason, 2 = published.
  std::atomic<int> abort_state_{0};
  std::string abort_reason_;
  ErrorCode abort_code_ = ErrorCode::Aborted;
};

ShmTransport::ShmTransport(const TransportSetup& setup)
    : rank_(checked(setup).rank),
      size_(setup.size),
      who_("shm transport: rank " + std::to_string(setup.rank)),
      peer_check_(std::max(1LL, env::get_int("WEFT_PEER_CHECK_MS"))),
      own_segment_(segment_name(setup), setup.rank, setup.size, ring_bytes_from_env(), who_),
      own_(&own_segment_.header()) {
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
                who_ + " of " + std::to_string(size_) + " stopped setting up: " + message_of(e));
  }
  own_segment_.unlink_name();  // connect() dropped the peers' names

  slots_.reserve(256);
  free_slots_.reserve(256);
  poll_fds_.reserve(size_);
  poll_ranks_.reserve(size_);
  key_ = own_->doorbell.key();
  oversubscribed_ = size_ > usable_cpus();
  WEFT_DEBUG(who_ << " of " << size_ << " connected, FIFOs of " << own_->ring_bytes << " bytes, "
                 << (fences_ == shm::Fences::asymmetric ? "asymmetric" : "symmetric")
                 << " fences");
}

void ShmTransport::connect(const TransportSetup& setup, const std::string& my_name) {
  peers_.resize(size_);
  std::vector<std::string> names(size_);
  if (size_ > 1) {
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
                                            message_of(e) + ")");
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
    } catch (const Error&) {
      setup.store->check_members();  // a dead rank's file may be gone already: say it died
      throw;
    }
    p.header = &p.segment.header();
    watch(p, r);
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
  }
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
                                          message_of(e) + ")");
    }
  }
  // Everyone has mapped everyone: the names are no longer needed. Every rank drops every name,
  // so one killed before dropping its own leaves nothing in /dev/shm either.
  for (int r = 0; r < size_; ++r)
    if (r != rank_) shm_unlink(names[r].c_str());
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
  if (!p.pidfd.open(p.pid)) {
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

// ---- requests ----

void ShmTransport::push(Queue& q, int32_t idx) {
  slots_[idx].next = -1;
  if (q.tail >= 0)
    slots_[q.tail].next = idx;
  else
    q.head = idx;
  q.tail = idx;
}

void ShmTransport::pop(Queue& q) {
  q.head = slots_[q.head].next;
  if (q.head < 0) q.tail = -1;
}

Transport::Request ShmTransport::isend(int peer, const void* data, size_t bytes,
                                       const Fingerprint& fp) {
  return post(true, peer, static_cast<std::byte*>(const_cast<void*>(data)), bytes, fp);
}

Transport::Request ShmTransport::irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) {
  return post(false, peer, static_cast<std::byte*>(data), bytes, fp);
}

Transport::Request ShmTransport::post(bool is_send, int peer, std::byte* data, size_t bytes,
                                      const Fingerprint& fp) {
  const char* verb = is_send ? "isend to" : "irecv from";
  if (peer < 0 || peer >= size_)
    throw Error(ErrorCode::InvalidArgument,
                who_ + " called " + verb + " rank " + std::to_string(peer) + " for " +
                    fp.describe() + ", but the group has " + std::to_string(size_) + " ranks");
  if (data == nullptr && bytes > 0)
    throw Error(ErrorCode::InvalidArgument, who_ + " called " + verb + " rank " +
                                                std::to_string(peer) + " with a null buffer of " +
                                                std::to_string(bytes) + " bytes for " +
                                                fp.describe());
  int32_t idx;
  if (!free_slots_.empty()) {
    idx = free_slots_.back();
    free_slots_.pop_back();
  } else {
    idx = static_cast<int32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[idx];
  s.is_send = is_send;
  s.peer = peer;
  s.data = data;
  s.bytes = bytes;
  s.fp = fp;
  s.moved = 0;
  s.via_mailbox = fits_mailbox(bytes);
  s.state = SlotState::pending;
  Request id = (static_cast<uint64_t>(s.generation) << 32) | static_cast<uint32_t>(idx + 1);
  if (is_send) {
    FrameHeader h = data_header(fp, bytes);
    std::memcpy(s.header, &h, kHeader);
  }
  // A new request invalidates "nothing to do": the next wait_for_progress() returns at once
  // and the caller's test() runs a full pass.
  idle_ = false;
  Peer& p = peers_[peer];
  check_own_abort();
  if (failed_) {
    fail(s, failure_code_, failure_);
    return id;
  }
  if (is_send && p.state != PeerState::alive) {
    fail(s, ErrorCode::PeerLost, lost_message(peer, s));
    return id;
  }
  ++pending_;
  Queue& q = is_send ? p.sends : p.recvs;
  push(q, idx);
  if (q.head == idx) {  // move what can move now
    if (is_send)
      progress_sends(p, SIZE_MAX);
    else
      progress_recvs(p, SIZE_MAX);
    announce(p);
  }
  return id;
}

Slot& ShmTransport::lookup(Request r) {
  uint64_t idx = (r & 0xffffffffu);
  if (idx == 0 || idx > slots_.size() || slots_[idx - 1].generation != (r >> 32) ||
      slots_[idx - 1].state == SlotState::free)
    throw Error(ErrorCode::Internal, who_ + " was asked about request " + std::to_string(r) +
                                         ", which is unknown or already completed (a bug in the "
                                         "caller: test() after it returned true or threw)");
  return slots_[idx - 1];
}

void ShmTransport::retire(Slot& s) {
  if (s.state == SlotState::done || s.state == SlotState::failed) --unretired_;
  s.state = SlotState::free;
  s.error.clear();
  ++s.generation;
  free_slots_.push_back(static_cast<int32_t>(&s - slots_.data()));
}

bool ShmTransport::test(Request r) {
  Slot& s = lookup(r);
  if (s.state == SlotState::pending) progress_all(&s);
  if (s.state == SlotState::done) {
    retire(s);
    return true;
  }
  if (s.state == SlotState::failed) {
    ErrorCode code = s.error_code;
    std::string message = std::move(s.error);
    retire(s);
    throw Error(code, message);
  }
  return false;
}

void ShmTransport::wait_for_progress(const LazyDeadline& until) {
  // A request was posted since the last full pass: let the caller's test() look first.
  // (Failed requests need no wake-up: test() reports them without waiting.)
  // Nor when a pass made for another request finished or failed one not yet retired.
  if (!idle_ || unretired_ > 0) return;

  // 1. Spin: a peer running on another core usually answers within a microsecond or two.
  // The clock is first read after kSpinUnclocked rounds, which a reply to a small message
  // usually beats: a clock read costs about as much as 10% of an 8-byte exchange.
  if (!oversubscribed_) {
    Deadline spin_end{};
    for (unsigned i = 1;; ++i) {
      if (progress_expected()) return;
      if (i == kSpinUnclocked) spin_end = Clock::now() + kSpin;
      if (i > kSpinUnclocked && i % 16 == 0 && Clock::now() >= spin_end) break;
      cpu_relax();
    }
  }
  // 2. Yield: the peer may be runnable but waiting for a core, perhaps this one. Longer while
  // the yields hand the core to someone (see kYieldShared), and bounded, so an idle rank still
  // ends up asleep.
  const Deadline yield_start = Clock::now();
  Deadline yield_end = yield_start + kYieldAlone;
  for (Deadline before = yield_start;;) {
    sched_yield();
    if (progress_expected()) return;
    Deadline after = Clock::now();
    if (after - before >= kYieldSwitched)
      yield_end = std::min(yield_start + kYieldShared, after + kYieldAlone);
    if (after >= yield_end) break;
    before = after;
  }

  // 3. Sleep. Before that, and only here (a clock read per pass would cost every message),
  // look whether a peer died: then the caller's next test() fails its requests.
  if (Clock::now() >= next_liveness_check_) {
    check_liveness();
    if (can_progress()) return;
  }
  shm::Doorbell& bell = own_->doorbell;
  Deadline wake = std::min(until.get(), Clock::now() + peer_check_);
  if (!bell.sleep(key_, wake, fences_, [this] { return !can_progress(); }))
    next_liveness_check_ = Deadline{};  // woke by time: look at the peers' pids next
}

bool ShmTransport::can_progress() {
  for (Peer& p : peers_) {
    if (!p.sends.empty()) {
      if (p.state != PeerState::alive) return true;
      if (slots_[p.sends.head].via_mailbox ? p.mail_out.can_post() : p.out.can_write())
        return true;
    }
    if (!p.recvs.empty() && (p.state != PeerState::alive || head_recv_can_progress(p)))
      return true;
  }
  return false;
}

// Whether the first pending receive from `p` can move: its message (or, when the sizes
// disagree, the peer's message on the other path) has arrived.
bool ShmTransport::head_recv_can_progress(Peer& p) {
  const Slot& s = slots_[p.recvs.head];
  if (s.moved > 0) return p.in.can_read();
  return mailbox_message(p) != nullptr || p.in.can_read();
}

// The peer's next message if it came through the mailbox, else null.
const std::byte* ShmTransport::mailbox_message(Peer& p) {
  return p.mail_in.peek(p.received + 1);
}

void ShmTransport::abort_with(ErrorCode code, const std::string& reason) {
  int expected = 0;
  if (!abort_state_.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return;
  abort_reason_ = reason.empty() ? "abort() called" : reason;
  abort_code_ = code;
  own_->abort_code = encode_abort_code(code);
  size_t n = std::min(abort_reason_.size(), kReasonBytes - 1);
  std::memcpy(own_->reason, abort_reason_.data(), n);
  own_->reason[n] = '\0';
  own_->flags.fetch_or(kFlagAborted, std::memory_order_release);
  abort_state_.store(2, std::memory_order_release);
  // Ring everyone, me included: my own progress thread may be asleep. (During set-up, only
  // the peers mapped so far.)
  for (Peer& p : peers_)
    if (p.header != nullptr) p.header->doorbell.ring();
}

// ---- progress ----

void ShmTransport::progress_all(const Slot* target) {
  // Read the doorbell before looking at any FIFO: whatever changes after this rings it, so a
  // sleep on this key cannot miss an event this pass did not see.
  key_ = own_->doorbell.key();
  idle_ = false;
  check_flags();
  if (failed_) {
    fail_everything();
    idle_ = true;
    return;
  }
  if (pending_ == 0) {
    idle_ = true;
    return;
  }
  for (;;) {
    bool moved = false;
    for (Peer& p : peers_) {
      if (!p.sends.empty()) moved |= progress_sends(p, kPassBytes);
      if (!p.recvs.empty()) moved |= progress_recvs(p, kPassBytes);
      announce(p);
    }
    if (failed_) {  // a mismatch aborted us
      fail_everything();
      idle_ = true;
      return;
    }
    if (!moved) break;
    if (target != nullptr && target->state != SlotState::pending) return;
  }
  idle_ = true;
  // Nothing more will come from a peer that is gone: what it wrote completely was delivered.
  for (size_t r = 0; r < peers_.size(); ++r) {
    Peer& p = peers_[r];
    if (p.state == PeerState::alive) continue;
    auto msg = [&](const Slot& s) { return lost_message(static_cast<int>(r), s); };
    fail_queue(p.sends, ErrorCode::PeerLost, msg);
    fail_queue(p.recvs, ErrorCode::PeerLost, msg);
  }
}

void ShmTransport::account(Peer& p, size_t moved) {
  p.unannounced += moved;
  if (p.unannounced >= kChunkBytes) announce(p);
}

void ShmTransport::announce(Peer& p) {
  if (p.unannounced == 0) return;
  p.out.publish();
  p.in.publish();
  p.header->doorbell.nudge();
  p.unannounced = 0;
}

bool ShmTransport::progress_sends(Peer& p, size_t budget) {
  if (p.state != PeerState::alive) return false;  // failed at the end of the pass
  bool moved = false;
  while (!p.sends.empty() && budget > 0) {
    Slot& s = slots_[p.sends.head];
    if (s.via_mailbox) {
      if (!progress_mailbox_send(p, s)) return moved;  // no free slot yet
      moved = true;
      continue;
    }
    size_t total = kHeader + s.bytes;
    while (s.moved < total && budget > 0) {
      bool in_header = s.moved < kHeader;
      const std::byte* src = in_header ? s.header + s.moved : s.data + (s.moved - kHeader);
      size_t left = (in_header ? kHeader : total) - s.moved;
      size_t want = std::min({left, budget, kChunkBytes});
      size_t k = p.out.write(src, want);
      s.moved += k;
      budget -= k;
      if (k > 0) moved = true;
      account(p, k);
      if (k < want) return moved;  // FIFO full
    }
    if (s.moved < total) break;
    complete(p, s);
  }
  return moved;
}

// Puts the whole message into the next mailbox slot, if one is free.
bool ShmTransport::progress_mailbox_send(Peer& p, Slot& s) {
  if (!p.mail_out.can_post()) return false;
  p.mail_out.post(p.sent + 1, s.header, kHeader, s.data, s.bytes);
  s.moved = kHeader + s.bytes;
  account(p, s.moved);  // so announce() nudges the peer
  complete(p, s);
  return true;
}

// Retires the head request of its queue as done.
void ShmTransport::complete(Peer& p, Slot& s) {
  s.state = SlotState::done;
  ++unretired_;
  --pending_;
  if (s.is_send) {
    ++p.sent;
    pop(p.sends);
  } else {
    ++p.received;
    pop(p.recvs);
  }
}

bool ShmTransport::progress_recvs(Peer& p, size_t budget) {
  bool moved = false;
  while (!p.recvs.empty() && budget > 0) {
    Slot& s = slots_[p.recvs.head];
    if (s.moved == 0) {
      // The message may sit in the mailbox: where we expect it, or, when the peer sent a
      // different size, where it put it instead of the FIFO.
      const std::byte* mail = mailbox_message(p);
      // FIFO data means the peer got past this message; a mailbox stamp it stored before that
      // data is visible now, so look once more.
      if (mail == nullptr && s.via_mailbox && p.in.can_read()) mail = mailbox_message(p);
      if (mail != nullptr) {
        std::memcpy(s.header, mail, kHeader);
        if (reject_bad_frame(p, s)) return true;
        if (!s.via_mailbox)  // check_frame_of() passed although the sizes take other paths
          throw Error(ErrorCode::Internal, who_ + ": a " + std::to_string(s.bytes) +
                                               "-byte message came through the mailbox");
        if (s.bytes > 0) std::memcpy(s.data, mail + kHeader, s.bytes);
        p.mail_in.release();
        s.moved = kHeader + s.bytes;
        budget -= std::min(budget, s.moved);
        moved = true;
        account(p, s.moved);  // so announce() nudges the peer, which may wait for a slot
        complete(p, s);
        continue;
      }
      if (s.via_mailbox && !p.in.can_read()) return moved;  // not here yet
      // Otherwise the message is in the FIFO; for a mailbox-sized receive that means the
      // sizes differ, and the header check below says so.
    }
    size_t total = kHeader + s.bytes;
    while (s.moved < total && budget > 0) {
      bool in_header = s.moved < kHeader;
      std::byte* dst = in_header ? s.header + s.moved : s.data + (s.moved - kHeader);
      size_t left = (in_header ? kHeader : total) - s.moved;
      size_t want = std::min({left, budget, kChunkBytes});
      size_t k = p.in.read(dst, want);
      bool header_done_now = in_header && s.moved + k == kHeader;
      s.moved += k;
      budget -= k;
      if (k > 0) moved = true;
      account(p, k);
      if (header_done_now && reject_bad_frame(p, s)) return true;
      if (k < want) return moved;  // FIFO empty
    }
    if (s.moved < total) break;
    complete(p, s);
  }
  return moved;
}

// Checks the frame header in `s` against what this rank posted. On a mismatch the stream is
// out of step with this rank's calls: fails `s` with the mismatch, everything else (here and
// on the peers) with Aborted, and returns true.
bool ShmTransport::reject_bad_frame(Peer& p, Slot& s) {
  try {
    check_frame_of(s);
    return false;
  } catch (const Error& e) {
    --pending_;
    pop(p.recvs);
    fail(s, e.code(), message_of(e));
    abort_with(e.code(), message_of(e));
    check_own_abort();
    return true;
  }
}

void ShmTransport::check_frame_of(Slot& s) {
  FrameHeader h;
  std::memcpy(&h, s.header, kHeader);
  if (h.magic == kFrameMagic && h.kind != FrameKind::data)
    throw Error(ErrorCode::Corrupt, who_ + " read a non-data frame from rank " +
                                        std::to_string(s.peer) + " while receiving " +
                                        s.fp.describe() + "; the stream is out of sync");
  check_frame(h, s.fp, s.bytes, rank_, s.peer, "shm transport");
}

// ---- failures ----

void ShmTransport::check_own_abort() {
  if (!failed_ && abort_state_.load(std::memory_order_acquire) == 2) {
    failed_ = true;
    failure_ = abort_reason_;
    failure_code_ = abort_code_;
  }
}

void ShmTransport::check_flags() {
  check_own_abort();
  // Peers ring my doorbell after setting a flag, so an unchanged doorbell means no new flags.
  if (flags_read_ && key_ == flags_key_) return;
  flags_read_ = true;
  flags_key_ = key_;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    Peer& p = peers_[r];
    uint32_t flags = p.header->flags.load(std::memory_order_acquire);
    if ((flags & kFlagAborted) && !failed_) {
      failed_ = true;
      failure_ = "rank " + std::to_string(r) + " aborted: " +
                 std::string(p.header->reason, strnlen(p.header->reason, kReasonBytes));
      failure_code_ = decode_abort_code(p.header->abort_code);
    }
    if ((flags & kFlagClosed) && p.state == PeerState::alive) p.state = PeerState::closed;
  }
}

void ShmTransport::check_liveness() {
  next_liveness_check_ = Clock::now() + peer_check_;
  poll_fds_.clear();
  poll_ranks_.clear();
  for (int r = 0; r < size_; ++r) {
    Peer& p = peers_[r];
    if (r == rank_ || p.state != PeerState::alive || p.pid == 0 || p.pid == own_->pid) continue;
    if (p.pidfd.get() >= 0) {
      poll_fds_.push_back(pollfd{p.pidfd.get(), POLLIN, 0});
      poll_ranks_.push_back(r);
    } else if (kill(p.pid, 0) != 0 && errno == ESRCH) {
      p.state = PeerState::exited;
    }
  }
  if (poll_fds_.empty()) return;
  // A pidfd turns readable when its process has exited.
  if (poll(poll_fds_.data(), poll_fds_.size(), 0) <= 0) return;
  for (size_t i = 0; i < poll_fds_.size(); ++i)
    if (poll_fds_[i].revents != 0) peers_[poll_ranks_[i]].state = PeerState::exited;
}

std::string ShmTransport::lost_message(int peer, const Slot& s) const {
  const Peer& p = peers_[peer];
  std::string doing = std::string(s.is_send ? "sending " : "receiving ") + s.fp.describe();
  std::string who = "rank " + std::to_string(peer);
  if (p.state == PeerState::closed)
    return who + " lost: it closed its shm transport while rank " + std::to_string(rank_) +
           " was " + doing + "; check " + who + "'s output (did it leave the job early?)";
  return who + " lost: process " + std::to_string(p.pid) + " exited while rank " +
         std::to_string(rank_) + " was " + doing + "; check " + who + "'s output";
}

void ShmTransport::fail(Slot& s, ErrorCode code, std::string message) {
  if (s.state != SlotState::failed) ++unretired_;
  s.state = SlotState::failed;
  s.error_code = code;
  s.error = std::move(message);
}

void ShmTransport::fail_queue(Queue& q, ErrorCode code,
                              const std::function<std::string(const Slot&)>& msg) {
  while (!q.empty()) {
    Slot& s = slots_[q.head];
    pop(q);
    --pending_;
    fail(s, code, msg(s));
  }
}

void ShmTransport::fail_everything() {
  auto msg = [this](const Slot&) { return failure_; };
  for (Peer& p : peers_) {
    fail_queue(p.sends, failure_code_, msg);
    fail_queue(p.recvs, failure_code_, msg);
  }
}

}  // namespace

std::unique_ptr<Transport> make_shm_transport(const TransportSetup& setup) {
  shm::sweep_dead_files();  // what ranks of jobs that are gone left on this node
  return std::make_unique<ShmTransport>(setup);
}

}  // namespace weft::comm
