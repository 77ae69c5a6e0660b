// The shared-memory transport's data path: requests, progress through the FIFOs and mailboxes,
// waiting, and failures (see shm_transport.h for the design).
#include "comm/transport/shm/transport_shm.h"

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
#include "comm/transport/shm/shm_transport.h"
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/unique_fd.h"

namespace weft::comm::shm {

// ---- requests ----

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
  s.single_copy = is_send && takes_single_copy(peer, bytes);
  s.ticket = 0;
  s.remote = 0;
  s.state = SlotState::pending;
  Request id = (static_cast<uint64_t>(s.generation) << 32) | static_cast<uint32_t>(idx + 1);
  if (is_send) {
    FrameHeader h = ledger_.header(fp, bytes, peer);
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

void ShmTransport::unknown_request(Request r) const {
  throw Error(ErrorCode::Internal, who_ + " was asked about request " + std::to_string(r) +
                                       ", which is unknown or already completed (a bug in the "
                                       "caller: test() after it returned true or threw)");
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

// A notice goes through the mailbox whole (it has no payload), so one still pending has not
// touched the peer: it leaves its queue, wherever in it, and nothing waits for a free slot.
void ShmTransport::withdraw_notice(Request r) {
  Slot& s = lookup(r);
  if (s.state == SlotState::pending) {
    Queue& q = peers_[s.peer].sends;
    const int32_t idx = static_cast<int32_t>(&s - slots_.data());
    int32_t prev = -1;
    for (int32_t i = q.head; i != idx; i = slots_[i].next) prev = i;
    (prev < 0 ? q.head : slots_[prev].next) = s.next;
    if (q.tail == idx) q.tail = prev;
    --pending_;
  }
  retire(s);
}

void ShmTransport::wait_for_progress(const LazyDeadline& until) {
  // A request was posted since the last full pass: let the caller's test() look first.
  // (Failed requests need no wake-up: test() reports them without waiting.)
  // Nor when a pass made for another request finished or failed one not yet retired.
  if (!idle_ || unretired_ > 0) return;

  // 1. Spin: a peer running on another core usually answers within a microsecond or two.
  if (!oversubscribed_ && spin_briefly([this] { return progress_expected(); })) return;
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
      const Slot& s = slots_[p.sends.head];
      if (s.single_copy ? single_copy_send_can_progress(p, s)
                        : s.via_mailbox ? p.mail_out.can_post() : p.out.can_write())
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
  if (s.single_copy) return true;  // its address has come: the rest is ours to read
  if (s.moved > 0) return p.in.can_read();
  return mailbox_message(p) != nullptr || p.in.can_read();
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

bool ShmTransport::progress_sends(Peer& p, size_t budget) {
  if (p.state != PeerState::alive) return false;  // failed at the end of the pass
  bool moved = false;
  while (!p.sends.empty() && budget > 0) {
    Slot& s = slots_[p.sends.head];
    if (s.single_copy) {
      if (!progress_single_copy_send(p, s)) return moved;  // not read yet
      moved = true;
      continue;
    }
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

bool ShmTransport::progress_recvs(Peer& p, size_t budget) {
  bool moved = false;
  while (!p.recvs.empty() && budget > 0) {
    Slot& s = slots_[p.recvs.head];
    if (s.single_copy) {
      if (!progress_single_copy_recv(p, s, budget)) return true;  // failed
      moved = true;
      if (s.state == SlotState::pending) return moved;  // budget spent
      continue;
    }
    if (s.moved == 0) {
      // The message may sit in the mailbox: where we expect it, or, when the peer sent a
      // different size, where it put it instead of the FIFO.
      const std::byte* mail = mailbox_message(p);
      // A message too large for a slot may come by address, announced in the mailbox.
      const bool expect_mail = s.via_mailbox || takes_single_copy(s.peer, s.bytes);
      // FIFO data means the peer got past this message; a mailbox stamp it stored before that
      // data is visible now, so look once more.
      if (mail == nullptr && expect_mail && p.in.can_read()) mail = mailbox_message(p);
      if (mail != nullptr) {
        std::memcpy(s.header, mail, kHeader);
        Header verdict = check_header(p, s);
        if (verdict == Header::failed) return true;
        if (verdict == Header::drop_notice) {
          p.mail_in.release();
          ++p.received;
          moved = true;
          account(p, kHeader);  // the peer may wait for the slot
          continue;
        }
        if (!s.via_mailbox) {  // the sizes agree, so this is the address of a large message
          start_single_copy_recv(p, s, mail + kHeader);
          moved = true;
          continue;
        }
        if (s.bytes > 0) std::memcpy(s.data, mail + kHeader, s.bytes);
        p.mail_in.release();
        s.moved = kHeader + s.bytes;
        budget -= std::min(budget, s.moved);
        moved = true;
        account(p, s.moved);  // so announce() nudges the peer, which may wait for a slot
        complete(p, s);
        continue;
      }
      if (expect_mail && !p.in.can_read()) return moved;  // not here yet
      // Otherwise the message is in the FIFO; for a mailbox-sized receive that means the
      // sizes differ, and the header check below says so.
    }
    size_t total = kHeader + s.bytes;
    bool dropped = false;
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
      if (header_done_now) {
        Header verdict = check_header(p, s);
        if (verdict == Header::failed) return true;
        if (verdict == Header::drop_notice) {  // no payload; the next message may be mail
          ++p.received;
          s.moved = 0;
          dropped = true;
          break;
        }
      }
      if (k < want) return moved;  // FIFO empty
    }
    if (dropped) continue;
    if (s.moved < total) break;
    complete(p, s);
  }
  return moved;
}

// Checks the frame header in `s` against what this rank posted. On a mismatch the stream is
// out of step with this rank's calls: fails `s` with the mismatch, everything else (here and
// on the peers) with the same code, naming it.
ShmTransport::Header ShmTransport::check_header(Peer& p, Slot& s) {
  try {
    FrameHeader h;
    std::memcpy(&h, s.header, kHeader);
    if (h.magic == kFrameMagic && is_stall_notice(h)) {
      judge_notice(h, s.fp, ledger_.sent(s.peer), rank_, s.peer, "shm transport");
      return Header::drop_notice;
    }
    if (h.magic == kFrameMagic && h.kind != FrameKind::data)
      throw Error(ErrorCode::Corrupt, who_ + " read a non-data frame from rank " +
                                          std::to_string(s.peer) + " while receiving " +
                                          s.fp.describe() + "; the stream is out of sync");
    check_frame(h, s.fp, s.bytes, rank_, s.peer, "shm transport");
    return Header::take;
  } catch (const Error& e) {
    --pending_;
    pop(p.recvs);
    fail(s, e.code(), e.message());
    abort_with(e.code(), e.message());
    check_own_abort();
    return Header::failed;
  }
}

// ---- failures ----

void ShmTransport::take_own_abort() {
  failed_ = true;
  failure_ = abort_reason_;
  failure_code_ = abort_code_;
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

}  // namespace weft::comm::shm
