#pragma once
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
//
// Single copy. A large message from memory weft does not own (a user's malloc) skips the FIFO
// when the kernel lets ranks read one another's memory (process_vm_readv, "CMA"): the sender
// puts only its buffer's address into the mailbox, the receiver reads the bytes straight into
// its own buffer and counts the message read, and only then does the send complete (shm_cma.cc).
//
// Direct access. Beside the FIFOs, the transport hands out registered memory (shm_arena.h) and
// runs collectives on it in place (shm_direct.cc), waiting on its peers' DirectState in their
// files with the same abort flags, liveness checks and deadlines as a FIFO wait.
//
// This header is the transport's inside, shared by its set-up (shm_setup.cc) and its data path
// (transport_shm.cc); programs reach it through transport_shm.h.
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

#include "comm/direct_access.h"
#include "comm/transport/shm/shm_arena.h"
#include "comm/transport/shm/shm_ring.h"
#include "comm/transport/shm/shm_sweep.h"
#include "comm/transport/shm/transport_shm.h"
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/cpu_relax.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/unique_fd.h"

namespace weft::comm::shm {

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

// The first phase of a wait, for a peer on another core: spins until `done()` (true) or for
// about kSpin (false). The clock is first read after kSpinUnclocked rounds, which a reply to a
// small message usually beats: a clock read costs about as much as 10% of an 8-byte exchange.
// Bounded by time, not by rounds: a pause costs 10 to 140 cycles by CPU (4096 of them took
// 110 us here), and a peer sharing this core cannot run while this one spins.
template <typename Done>
bool spin_briefly(Done&& done) {
  Deadline end{};
  for (unsigned i = 1;; ++i) {
    if (done()) return true;
    if (i == kSpinUnclocked) end = Clock::now() + kSpin;
    if (i > kSpinUnclocked && i % 16 == 0 && Clock::now() >= end) return false;
    cpu_relax();
  }
}
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
inline bool fits_mailbox(size_t bytes) { return bytes <= shm::kMailboxBodyBytes - kHeader; }

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
  size_t moved = 0;          // stream bytes moved so far: header, then payload
  bool via_mailbox = false;  // small enough for a mailbox slot (see fits_mailbox())
  bool single_copy = false;  // send: by address (shm_cma.cc); recv: its address has come
  uint64_t ticket = 0;       // single-copy send: its number among them to this peer
  uint64_t remote = 0;       // single-copy recv: the payload's address in the sender
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
  shm::RingControl* out_control = nullptr;  // of my FIFO in its file
  shm::RingControl* in_control = nullptr;   // of its FIFO in my file
  // Single-copy messages: sent to it by address, and read from it so far.
  uint64_t single_copy_sent = 0;
  uint64_t single_copy_read = 0;
  // Messages completed each way, whichever path they took; message k's mailbox stamp is k.
  uint64_t sent = 0;
  uint64_t received = 0;
  Queue sends;
  Queue recvs;
  size_t unannounced = 0;  // bytes moved but not yet published to it
  int pid = 0;             // 0: not watched (another pid namespace)
  UniqueFd pidfd;          // readable once its process has exited
  PeerState state = PeerState::alive;
};

class ShmTransport final : public Transport, public DirectAccess {
 public:
  explicit ShmTransport(const TransportSetup& setup);
  ~ShmTransport() override;
  ShmTransport(const ShmTransport&) = delete;
  ShmTransport& operator=(const ShmTransport&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "shm"; }
  bool carries_stall_notices() const override { return true; }
  Request isend(int peer, const void* data, size_t bytes, const Fingerprint& fp) override;
  Request irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) override;
  bool test(Request r) override;
  void withdraw_notice(Request r) override;
  void wait_for_progress(const LazyDeadline& until) override;
  void abort(const std::string& reason) override { abort_with(ErrorCode::Aborted, reason); }
  void abort_with(ErrorCode code, const std::string& reason) override;
  DirectAccess* direct_access() override { return this; }
  uint64_t single_copy_messages() const override {
    return single_copy_messages_.load(std::memory_order_relaxed);
  }

  // DirectAccess (shm_direct.cc).
  std::shared_ptr<RegisteredSegment> allocate(size_t bytes) override {
    return arena_.allocate(bytes);
  }
  std::shared_ptr<RegisteredSegment> find(const void* data, size_t bytes) override {
    return arena_.find(data, bytes);
  }
  bool run(const Fingerprint& fp, DirectBuffer buffer, void* data, size_t bytes,
           const DirectWork& work, const LazyDeadline& deadline) override;

 private:
  // The direct path's waits: until ready() (re-read every pass), failing like a FIFO wait.
  template <typename Ready>
  void wait_direct(const Fingerprint& fp, const char* phase, const LazyDeadline& deadline,
                   Ready&& ready);

  void connect(const TransportSetup& setup, const std::string& my_name);
  // Single-copy set-up (shm_cma.cc): before the barrier, whether this rank can read every peer;
  // after it, whether every rank can (single_copy_bytes_ stays 0 otherwise).
  void probe_single_copy();
  void agree_single_copy();
  void watch(Peer& p, int r);

  Request post(bool is_send, int peer, std::byte* data, size_t bytes, const Fingerprint& fp);
  Slot& lookup(Request r);
  [[noreturn]] void unknown_request(Request r) const;
  void retire(Slot& s);
  void push(Queue& q, int32_t idx);
  void pop(Queue& q);

  void progress_all(const Slot* target);
  bool progress_sends(Peer& p, size_t budget);
  bool progress_recvs(Peer& p, size_t budget);
  bool progress_mailbox_send(Peer& p, Slot& s);
  // Single-copy messages (shm_cma.cc).
  bool takes_single_copy(int peer, size_t bytes) const;
  bool progress_single_copy_send(Peer& p, Slot& s);
  bool single_copy_send_can_progress(Peer& p, const Slot& s);
  void start_single_copy_recv(Peer& p, Slot& s, const std::byte* descriptor);
  bool progress_single_copy_recv(Peer& p, Slot& s, size_t& budget);
  void fail_recv(Peer& p, Slot& s, ErrorCode code, std::string message);
  const std::byte* mailbox_message(Peer& p);
  bool head_recv_can_progress(Peer& p);
  void complete(Peer& p, Slot& s);
  // What a received header in `s` means: the message to take, a stall notice to drop (it came
  // where `s`'s message should be, and no longer holds: stall_notice.h), or a mismatch, which
  // failed `s` and aborted the transport.
  enum class Header { take, drop_notice, failed };
  Header check_header(Peer& p, Slot& s);
  // While a direct op waits for `peer` to arrive: the peer may wait in a receive from this rank
  // instead, and its stall notice be the next message in its mailbox. Throws InvalidArgument
  // naming both calls when it holds (wire.h: judge_notice); drops it when stale.
  void judge_mailed_notice(int peer, const Fingerprint& fp);
  void account(Peer& p, size_t moved);
  void announce(Peer& p);
  bool can_progress();
  bool progress_expected() { return own_->doorbell.key() != key_ || can_progress(); }

  // This rank's own abort(), perhaps from another thread: fails everything from here on.
  void check_own_abort();
  void take_own_abort();
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
  shm::ShmArena arena_;  // registered memory (the direct path)
  std::vector<std::byte*> direct_bases_;  // the running direct op's buffer of each rank
  std::vector<Peer> peers_;  // by rank; peers_[rank_] is the loopback
  SendLedger ledger_;        // what stall notices from the peers are judged by

  std::vector<Slot> slots_;
  std::vector<int32_t> free_slots_;
  size_t pending_ = 0;  // slots in a queue

  uint32_t key_ = 0;        // my doorbell as read before the last full progress pass
  uint32_t flags_key_ = 0;  // my doorbell when peers' flags were last read
  bool flags_read_ = false;
  bool idle_ = false;     // the last pass found nothing to move
  size_t unretired_ = 0;  // requests done or failed that test() has not yet reported
  std::vector<pollfd> poll_fds_;
  std::vector<int> poll_ranks_;
  Deadline next_liveness_check_{};
  // More ranks than cores to run them: a waiting rank yields at once instead of spinning,
  // since the peer it waits for may need this very core (spinning 5 us first made an 8-byte
  // allreduce on 4 ranks and 2 cores about 5x slower).
  bool oversubscribed_ = false;
  shm::Fences fences_ = shm::Fences::symmetric;  // how publishing pairs with sleeping
  // Messages of at least this many bytes to another rank go by address (0: never, because
  // WEFT_SHM_CMA=0 or some rank cannot read its peers' memory).
  size_t single_copy_bytes_ = 0;
  std::string single_copy_off_;  // why not, for the debug log
  std::atomic<uint64_t> single_copy_messages_{0};  // sent or read by address, for benchmarks

  // Failure that ends everything: this rank's abort() or a peer's.
  bool failed_ = false;
  std::string failure_;
  ErrorCode failure_code_ = ErrorCode::Aborted;
  // abort() may run on any thread: 0 = not aborted, 1 = writing the reason, 2 = published.
  std::atomic<int> abort_state_{0};
  std::string abort_reason_;
  ErrorCode abort_code_ = ErrorCode::Aborted;
};

// The steps every message takes, inline (a call apiece cost an 8-byte allreduce a tenth of its
// time).

inline void ShmTransport::push(Queue& q, int32_t idx) {
  slots_[idx].next = -1;
  if (q.tail >= 0)
    slots_[q.tail].next = idx;
  else
    q.head = idx;
  q.tail = idx;
}

inline void ShmTransport::pop(Queue& q) {
  q.head = slots_[q.head].next;
  if (q.head < 0) q.tail = -1;
}

inline bool ShmTransport::takes_single_copy(int peer, size_t bytes) const {
  return single_copy_bytes_ > 0 && peer != rank_ && bytes >= single_copy_bytes_;
}

// The peer's next message if it came through the mailbox, else null.
inline const std::byte* ShmTransport::mailbox_message(Peer& p) {
  return p.mail_in.peek(p.received + 1);
}

// Retires the head request of its queue as done.
inline void ShmTransport::complete(Peer& p, Slot& s) {
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

inline void ShmTransport::account(Peer& p, size_t moved) {
  p.unannounced += moved;
  if (p.unannounced >= kChunkBytes) announce(p);
}

inline void ShmTransport::announce(Peer& p) {
  if (p.unannounced == 0) return;
  p.out.publish();
  p.in.publish();
  p.header->doorbell.nudge();
  p.unannounced = 0;
}

inline Slot& ShmTransport::lookup(Request r) {
  uint64_t idx = (r & 0xffffffffu);
  if (idx == 0 || idx > slots_.size() || slots_[idx - 1].generation != (r >> 32) ||
      slots_[idx - 1].state == SlotState::free)
    unknown_request(r);
  return slots_[idx - 1];
}

inline void ShmTransport::check_own_abort() {
  if (!failed_ && abort_state_.load(std::memory_order_acquire) == 2) take_own_abort();
}

}  // namespace weft::comm::shm
