// Single-copy messages over shm: a large message from memory weft does not own (a user's malloc,
// a torch tensor) moves with one copy, the receiver reading it straight from the sender's buffer
// with process_vm_readv (Linux's cross-memory attach, CMA), instead of two (into the FIFO, out).
//  1. Set-up: each rank reads a word at a known address (SegmentHeader::probe_address) of every
//     peer's process. Where the kernel refuses (Yama's ptrace_scope, another user, a seccomp
//     policy or container without it: EPERM, ENOSYS), or WEFT_SHM_CMA=0, or a peer cannot be
//     watched through a pidfd, the rank says so in its header; after the set-up barrier every
//     rank reads every header, so all send large messages by address, or none does.
//  2. Send: the frame header and the buffer's address go into the next mailbox slot; the send
//     stays pending (its buffer must not change) until the receiver counts it read
//     (RingControl::single_copy_read).
//  3. Receive: read the payload in chunks (other peers' messages move in between), then, before
//     counting it read, make sure the bytes are the sender's op's: its process still runs (so
//     its pid was not reused by another), and no rank has aborted (a rank whose op fails aborts
//     before its caller may touch the buffer again).
// A sender killed mid-read fails the read (ESRCH, EFAULT) or the check after it: PeerLost
// naming it, like a FIFO wait. Which sizes take it: WEFT_SHM_CMA_BYTES, and never a message
// that fits the FIFO whole (see agree_single_copy).
#include <poll.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "comm/transport/shm/shm_transport.h"

namespace weft::comm::shm {
namespace {

// What a single-copy message puts in the mailbox after its frame header.
struct Descriptor {
  uint64_t magic;
  uint64_t address;  // of the payload, in the sender's address space
  uint64_t bytes;
};
constexpr uint64_t kDescriptorMagic = 0x31616d6374666577;  // "weftcma1"
static_assert(kHeader + sizeof(Descriptor) <= kMailboxBodyBytes);

// Bytes per process_vm_readv: large enough that the system call costs nothing beside the copy,
// small enough that a pass over the peers comes back to the others soon.
constexpr size_t kReadChunk = 1 << 20;

ssize_t read_from(int pid, void* dst, uint64_t remote, size_t bytes) {
  iovec local{dst, bytes};
  iovec far{reinterpret_cast<void*>(remote), bytes};
  return process_vm_readv(pid, &local, 1, &far, 1, 0);
}

}  // namespace

void ShmTransport::probe_single_copy() {
  own_->single_copy = kSingleCopyOff;
  if (env::get_int("WEFT_SHM_CMA") == 0) {
    single_copy_off_ = "WEFT_SHM_CMA=0";
    return;
  }
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    const Peer& p = peers_[r];
    const std::string peer = "rank " + std::to_string(r);
    if (p.pid == 0 || p.pid == own_->pid || !p.pidfd) {
      // Without a pidfd a dead peer's pid could name another process by the time we read it.
      single_copy_off_ = peer +
                         " is no process this rank can watch through a pidfd (another "
                         "pid namespace, a thread of this process, or an old kernel)";
      return;
    }
    uint64_t word = 0;
    if (read_from(p.pid, &word, p.header->probe_address, sizeof word) != sizeof word) {
      single_copy_off_ = "reading " + peer + "'s memory failed (" + std::strerror(errno) +
                         "; ptrace_scope, another user or a container's seccomp policy forbid it)";
      return;
    }
    if (word != p.header->magic) {
      single_copy_off_ = "reading " + peer + "'s memory gave another word than its file holds";
      return;
    }
  }
  own_->single_copy = kSingleCopyOn;
}

void ShmTransport::agree_single_copy() {
  if (size_ == 1) single_copy_off_ = "one rank";
  for (int r = 0; r < size_ && single_copy_off_.empty(); ++r)
    if (peers_[r].header->single_copy != kSingleCopyOn)
      single_copy_off_ = "rank " + std::to_string(r) + " cannot read its peers' memory";
  // Only messages that would not fit the FIFO whole: a send that fits completes at once (a
  // program may send before it receives, as Communicator::send documents), one by address only
  // once the peer has read it. Larger ones wait for the peer on either path.
  const size_t whole_fifo = own_->ring_bytes - kHeader + 1;
  const long long from = env::get_int("WEFT_SHM_CMA_BYTES");
  single_copy_bytes_ =
      single_copy_off_.empty() ? std::max<size_t>(whole_fifo, std::max(0LL, from)) : 0;
  if (single_copy_bytes_ > 0)
    WEFT_DEBUG(who_ << ": messages from " << single_copy_bytes_
                    << " bytes are read straight from the sender's memory (CMA)");
  else
    WEFT_DEBUG(who_ << ": single-copy reads (CMA) off: " << single_copy_off_);
}

bool ShmTransport::single_copy_send_can_progress(Peer& p, const Slot& s) {
  if (s.ticket == 0) return p.mail_out.can_post();
  return p.out_control->single_copy_read.load(std::memory_order_acquire) >= s.ticket;
}

// Announces the send's address (once a mailbox slot is free), then completes it once the peer
// has read it. Returns whether anything moved.
bool ShmTransport::progress_single_copy_send(Peer& p, Slot& s) {
  bool moved = false;
  if (s.ticket == 0) {
    if (!p.mail_out.can_post()) return false;
    const Descriptor d{kDescriptorMagic, reinterpret_cast<uint64_t>(s.data), s.bytes};
    p.mail_out.post(p.sent + 1, s.header, kHeader, &d, sizeof d);
    s.ticket = ++p.single_copy_sent;
    s.moved = kHeader;
    account(p, kHeader + sizeof d);  // so announce() nudges the peer
    moved = true;
  }
  if (p.out_control->single_copy_read.load(std::memory_order_acquire) < s.ticket) return moved;
  s.moved = kHeader + s.bytes;
  single_copy_messages_.fetch_add(1, std::memory_order_relaxed);
  complete(p, s);
  return true;
}

void ShmTransport::start_single_copy_recv(Peer& p, Slot& s, const std::byte* descriptor) {
  Descriptor d;
  std::memcpy(&d, descriptor, sizeof d);
  p.mail_in.release();
  account(p, kHeader + sizeof d);  // the peer may wait for the slot
  if (d.magic != kDescriptorMagic || d.bytes != s.bytes) {
    fail_recv(p, s, ErrorCode::Corrupt,
              who_ + " got a bad single-copy descriptor from rank " + std::to_string(s.peer) +
                  " while receiving " + s.fp.describe() + "; the stream is out of sync");
    return;
  }
  s.single_copy = true;
  s.remote = d.address;
  s.moved = kHeader;
}

// Reads up to `budget` more bytes of the message; at its end checks and counts it. Returns
// false when it failed the receive (then no longer at the head of the queue).
bool ShmTransport::progress_single_copy_recv(Peer& p, Slot& s, size_t& budget) {
  const size_t total = kHeader + s.bytes;
  const std::string from = "rank " + std::to_string(s.peer);
  while (s.moved < total && budget > 0) {
    const size_t done = s.moved - kHeader;
    const size_t want = std::min(total - s.moved, kReadChunk);
    const ssize_t k = read_from(p.pid, s.data + done, s.remote + done, want);
    if (k <= 0) {
      const int e = k < 0 ? errno : EFAULT;
      check_liveness();
      // ESRCH: the process has let go of its memory, on its way out (its pidfd may turn
      // readable only a moment later).
      if (e == ESRCH) p.state = PeerState::exited;
      if (p.state == PeerState::exited) {
        fail_recv(p, s, ErrorCode::PeerLost, lost_message(s.peer, s));
        return false;
      }
      flags_read_ = false;  // a failed op aborts before its buffer goes: look again
      check_flags();
      if (failed_) {
        fail_recv(p, s, failure_code_, failure_);
        return false;
      }
      fail_recv(p, s, ErrorCode::Internal,
                who_ + " could not read " + std::to_string(want) + " bytes of " + s.fp.describe() +
                    " from " + from + "'s memory (pid " + std::to_string(p.pid) +
                    "): " + std::strerror(e) + "; set WEFT_SHM_CMA=0 to send through the FIFOs");
      return false;
    }
    s.moved += static_cast<size_t>(k);
    budget -= std::min(budget, static_cast<size_t>(k));
  }
  if (s.moved < total) return true;

  // The bytes are the sender's op's only if it still runs and nobody has aborted since: the
  // checks below must not be read before the copy. ThreadSanitizer rejects fences; its builds
  // rely on the syscalls between (the copy's, poll's), which no compiler or x86 core reorders.
#if !defined(__SANITIZE_THREAD__)
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  pollfd alive{p.pidfd.get(), POLLIN, 0};
  if (poll(&alive, 1, 0) > 0) {
    p.state = PeerState::exited;
    fail_recv(p, s, ErrorCode::PeerLost, lost_message(s.peer, s));
    return false;
  }
  flags_read_ = false;
  check_flags();
  if (failed_) {
    fail_recv(p, s, failure_code_, failure_);
    return false;
  }
  p.in_control->single_copy_read.store(++p.single_copy_read, std::memory_order_seq_cst);
  p.header->doorbell.nudge();  // the sender may sleep until its buffer is free
  single_copy_messages_.fetch_add(1, std::memory_order_relaxed);
  complete(p, s);
  return true;
}

void ShmTransport::fail_recv(Peer& p, Slot& s, ErrorCode code, std::string message) {
  --pending_;
  pop(p.recvs);
  fail(s, code, std::move(message));
}

}  // namespace weft::comm::shm
