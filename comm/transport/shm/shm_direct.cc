// Collectives on registered memory in place (see comm/direct_access.h): the ranks read and
// write one another's buffers, mapped from their memfd segments (shm_arena.h), instead of
// copying every byte into a FIFO and out again. What each rank does with the buffers is the
// algorithm's (comm/algorithms/direct_collectives.cc); the transport orders the op's start and
// end, through each rank's DirectState in its shm file:
//  1. arrive: a rank describes its buffer (registered segment, offset, size, and the op's
//     fingerprint) and stores the op's number in `arrived`; it touches its peers' buffers only
//     once every peer has arrived (their input is in place). Every rank reads the same
//     descriptions, so all agree whether every buffer is registered, and all return false
//     together when one is not (that op then takes the FIFOs), or all name the same mismatch.
//  2. work: the algorithm reads (and, for allreduce, writes) the mapped buffers;
//  3. store the op's number in `written`, and return once every peer has too: no peer will
//     touch this rank's buffer again before its next arrival.
// Algorithms split the work so that no byte is written by two ranks, or read by one while
// another writes it, within an op: chunks need no flags of their own.
// Waits spin, then yield the core, re-checking between yields the abort flags, the liveness of
// the rank waited for and the deadline, like a FIFO wait. A peer killed mid-op cannot fault us:
// its segments stay mapped here (sealed against shrinking) until this rank drops them.
#include <sched.h>

#include <chrono>
#include <cstring>
#include <string>

#include "comm/transport/shm/shm_transport.h"

namespace weft::comm::shm {

template <typename Ready>
void ShmTransport::wait_direct(const Fingerprint& fp, const char* phase,
                               const LazyDeadline& deadline, Ready&& ready) {
  // A peer on another core arrives within microseconds. (Spinning 4096 rounds, about 110 us
  // here, made ops on plain memory, which agree here before they take the FIFOs, 3 to 6 times
  // slower whenever two ranks shared a core.)
  if (!oversubscribed_ && spin_briefly([&] { return ready() < 0; })) return;
  for (;;) {
    const int waiting = ready();
    if (waiting < 0) return;
    key_ = own_->doorbell.key();  // peers ring it after setting their flags
    check_flags();
    const std::string what = who_ + ": " + fp.describe() + " over registered memory, " + phase;
    if (failed_) throw Error(failure_code_, what + ": " + failure_);
    judge_mailed_notice(waiting, fp);
    if (Clock::now() >= next_liveness_check_) check_liveness();
    const Peer& p = peers_[waiting];
    if (p.state == PeerState::exited)
      throw Error(ErrorCode::PeerLost, what + ": rank " + std::to_string(waiting) +
                                           " lost: process " + std::to_string(p.pid) +
                                           " exited; check rank " + std::to_string(waiting) +
                                           "'s output");
    if (p.state == PeerState::closed)
      throw Error(ErrorCode::PeerLost, what + ": rank " + std::to_string(waiting) +
                                           " lost: it closed its shm transport; did it leave "
                                           "the job early?");
    if (Clock::now() >= deadline.get())
      throw Error(ErrorCode::Timeout, what + ", gave up waiting for rank " +
                                          std::to_string(waiting) +
                                          "; is it stuck or running another op? (WEFT_TIMEOUT)");
    sched_yield();
  }
}

void ShmTransport::judge_mailed_notice(int peer, const Fingerprint& fp) {
  Peer& p = peers_[peer];
  const std::byte* mail = mailbox_message(p);
  if (mail == nullptr) return;
  FrameHeader h;
  std::memcpy(&h, mail, kHeader);
  if (h.magic != kFrameMagic || !is_stall_notice(h)) return;
  if (judge_notice(h, fp, ledger_.sent(peer), rank_, peer, "shm transport") ==
      NoticeVerdict::stale) {
    p.mail_in.release();
    ++p.received;
    account(p, kHeader);
  }
}

bool ShmTransport::run(const Fingerprint& fp, DirectBuffer buffer, void* data, size_t bytes,
                       const DirectWork& work, const LazyDeadline& deadline) {
  if (size_ == 1) return false;
  check_own_abort();
  if (failed_) throw Error(failure_code_, who_ + ": " + fp.describe() + ": " + failure_);

  // 1. Arrive, and agree. (Word of freed segments that a peer's queue refused goes first, so
  // that the peer reads it in this op.)
  arena_.send_unsent();
  DirectState& mine = own_->direct;
  const bool registered = buffer.segment != nullptr && buffer.segment->shared();
  mine.segment = registered ? buffer.segment->id() : kNotRegistered;
  mine.offset = buffer.offset;
  mine.bytes = bytes;
  mine.fp = encode(fp);
  mine.arrived.store(fp.seq, std::memory_order_release);
  wait_direct(fp, "waiting for its peers to start it", deadline, [&] {
    for (int r = 0; r < size_; ++r)
      if (peers_[r].header->direct.arrived.load(std::memory_order_acquire) < fp.seq) return r;
    return -1;
  });
  bool everyone = true;
  for (int r = 0; r < size_; ++r) {
    const DirectState& d = peers_[r].header->direct;
    Fingerprint theirs = decode(d.fp);
    theirs.seq = d.arrived.load(std::memory_order_acquire);
    if (!(theirs == fp))
      throw Error(ErrorCode::InvalidArgument,
                  who_ + " issued " + fp.describe() + " but rank " + std::to_string(r) +
                      " issued " + theirs.describe() +
                      "; every rank must issue the same collectives in the same order with the "
                      "same dtype, count, op and root");
    everyone = everyone && d.segment != kNotRegistered;
  }
  if (!everyone) return false;

  // 2. Map every peer's buffer (new segments are taken in, freed ones dropped: only when a
  // peer's channel holds news, since reading it costs a system call per peer), and work.
  arena_.receive_news();
  direct_bases_.assign(size_, nullptr);
  for (int r = 0; r < size_; ++r) {
    const DirectState& d = peers_[r].header->direct;
    std::byte* base = r == rank_ ? static_cast<std::byte*>(data)
                                 : arena_.peer_segment(r, d.segment, d.offset + d.bytes);
    if (base == nullptr)
      throw Error(ErrorCode::Internal, who_ + ": " + fp.describe() + ": rank " + std::to_string(r) +
                                           "'s registered segment " + std::to_string(d.segment) +
                                           " never arrived here, or is shorter than the op");
    direct_bases_[r] = r == rank_ ? base : base + d.offset;
  }
  work(direct_bases_);

  // 3. Done with my share; wait until every peer is done with mine.
  mine.written.store(fp.seq, std::memory_order_release);
  wait_direct(fp, "waiting for its peers to finish it", deadline, [&] {
    for (int r = 0; r < size_; ++r)
      if (peers_[r].header->direct.written.load(std::memory_order_acquire) < fp.seq) return r;
    return -1;
  });
  return true;
}

}  // namespace weft::comm::shm
