// Collectives on registered memory in place (see comm/direct_access.h): the ranks read and
// write one another's buffers, mapped from their memfd segments (shm_arena.h), instead of
// copying every byte into a FIFO and out again.
//
// Allreduce. Rank r owns block r of the buffer (block_range's split: the first count % n blocks
// one element longer). For each chunk of its block, small enough to stay in cache, it reduces
// the chunk of every rank's buffer, in rank order, into its scratch, then writes the result into
// every rank's buffer. Each byte of the buffers is read once and written once, by the one rank
// that owns its block; no other rank touches that block of any buffer during the op, so chunks
// need no flags of their own. What must be ordered is the op's start and end, through each
// rank's DirectState in its shm file:
//  1. arrive: a rank describes its buffer (registered segment, offset, and the op's
//     fingerprint) and stores the op's number in `arrived`; it reads its peers' buffers only
//     once every peer has arrived (their input is in place). Every rank reads the same
//     descriptions, so all agree whether every buffer is registered, and all return false
//     together when one is not (that op then takes the FIFOs), or all name the same mismatch.
//  2. reduce its block into every buffer;
//  3. store the op's number in `written`, and return once every peer has too: its buffer then
//     holds every block, and no peer will read it again before its next arrival.
// Waits spin, then yield the core, re-checking between yields the abort flags, the liveness of
// the rank waited for and the deadline, like a FIFO wait. A peer killed mid-op cannot fault us:
// its segments stay mapped here (sealed against shrinking) until this rank drops them.
#include <sched.h>

#include <chrono>
#include <string>

#include "comm/transport/shm/shm_transport.h"

namespace weft::comm::shm {
namespace {

// The share reduced at a time: the partial result stays in L2 while each peer's chunk is read
// into it and while it is written out to every buffer.
constexpr size_t kDirectChunkBytes = 64 * 1024;
// Spin rounds before yielding: a peer on another core arrives within microseconds.
constexpr unsigned kDirectSpins = 4096;

// Elements [first, first + count) of rank r's block (as comm/algorithms' block_range).
std::pair<size_t, size_t> block_of(size_t total, int parts, int r) {
  const size_t per = total / parts, extra = total % parts, ur = static_cast<size_t>(r);
  return {ur * per + std::min(ur, extra), per + (ur < extra ? 1 : 0)};
}

}  // namespace

template <typename Ready>
void ShmTransport::wait_direct(const Fingerprint& fp, const char* phase,
                               const LazyDeadline& deadline, Ready&& ready) {
  for (unsigned i = 0; i < kDirectSpins && !oversubscribed_; ++i) {
    if (ready() < 0) return;
    cpu_relax();
  }
  for (;;) {
    const int waiting = ready();
    if (waiting < 0) return;
    key_ = own_->doorbell.key();  // peers ring it after setting their flags
    check_flags();
    const std::string what = who_ + ": " + fp.describe() + " over registered memory, " + phase;
    if (failed_) throw Error(failure_code_, what + ": " + failure_);
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

bool ShmTransport::allreduce(const Fingerprint& fp, DirectBuffer buffer, void* data, size_t count,
                             DType dtype, ReduceOp op, BufferOps& ops, void* scratch,
                             size_t scratch_bytes, const LazyDeadline& deadline) {
  if (size_ == 1) return false;
  check_own_abort();
  if (failed_) throw Error(failure_code_, who_ + ": " + fp.describe() + ": " + failure_);
  const size_t esize = dtype_size(dtype), bytes = count * esize;

  // 1. Arrive, and agree.
  DirectState& mine = own_->direct;
  const bool registered = buffer.segment != nullptr && buffer.segment->shared();
  mine.segment = registered ? buffer.segment->id() : kNotRegistered;
  mine.offset = buffer.offset;
  mine.count = count;
  mine.dtype = static_cast<uint32_t>(dtype);
  mine.reduce = static_cast<uint32_t>(op);
  mine.arrived.store(fp.seq, std::memory_order_release);
  wait_direct(fp, "waiting for its peers to start it", deadline, [&] {
    for (int r = 0; r < size_; ++r)
      if (peers_[r].header->direct.arrived.load(std::memory_order_acquire) < fp.seq) return r;
    return -1;
  });
  bool everyone = true;
  for (int r = 0; r < size_; ++r) {
    const DirectState& d = peers_[r].header->direct;
    const uint64_t at = d.arrived.load(std::memory_order_acquire);
    if (at != fp.seq || d.count != count || d.dtype != mine.dtype || d.reduce != mine.reduce) {
      Fingerprint theirs = fp;
      theirs.seq = at;
      theirs.count = d.count;
      theirs.dtype = static_cast<DType>(d.dtype);
      theirs.reduce = static_cast<ReduceOp>(d.reduce);
      throw Error(ErrorCode::InvalidArgument,
                  who_ + " issued " + fp.describe() + " but rank " + std::to_string(r) +
                      " issued " + theirs.describe() +
                      "; every rank must issue the same collectives in the same order");
    }
    everyone = everyone && d.segment != kNotRegistered;
  }
  if (!everyone) return false;

  // 2. Map every peer's buffer (new segments are taken in, freed ones dropped).
  arena_.receive();
  direct_bases_.assign(size_, nullptr);
  for (int r = 0; r < size_; ++r) {
    const DirectState& d = peers_[r].header->direct;
    std::byte* base = r == rank_ ? static_cast<std::byte*>(data)
                                 : arena_.peer_segment(r, d.segment, d.offset + bytes);
    if (base == nullptr)
      throw Error(ErrorCode::Internal, who_ + ": " + fp.describe() + ": rank " + std::to_string(r) +
                                           "'s registered segment " + std::to_string(d.segment) +
                                           " never arrived here, or is shorter than the op");
    direct_bases_[r] = r == rank_ ? base : base + d.offset;
  }

  // 3. Reduce my block, chunk by chunk, into every buffer.
  auto [first, mine_count] = block_of(count, size_, rank_);
  const size_t per_chunk = std::max<size_t>(1, std::min(kDirectChunkBytes, scratch_bytes) / esize);
  auto* sum = static_cast<std::byte*>(scratch);
  for (size_t done = 0; done < mine_count; done += per_chunk) {
    const size_t n = std::min(per_chunk, mine_count - done);
    const size_t at = (first + done) * esize;
    ops.reduce(sum, direct_bases_[0] + at, direct_bases_[1] + at, n, dtype, op);
    for (int r = 2; r < size_; ++r) ops.reduce(sum, sum, direct_bases_[r] + at, n, dtype, op);
    if (op == ReduceOp::avg) ops.scale_down(sum, n, dtype, size_);
    for (int r = 0; r < size_; ++r) std::memcpy(direct_bases_[r] + at, sum, n * esize);
  }

  // 4. Done with my block everywhere; wait for everyone's in mine.
  mine.written.store(fp.seq, std::memory_order_release);
  wait_direct(fp, "waiting for its peers' blocks", deadline, [&] {
    for (int r = 0; r < size_; ++r)
      if (peers_[r].header->direct.written.load(std::memory_order_acquire) < fp.seq) return r;
    return -1;
  });
  return true;
}

}  // namespace weft::comm::shm
