#pragma once
// The shared memory under the shm transport (private to it), bottom up:
//
//  - RingControl + RingWriter/RingReader: a single-producer single-consumer byte FIFO whose
//    control words and data live in a mapping shared by two processes; each side keeps its
//    cursor in its own private memory;
//  - MailboxWriter/MailboxReader: beside each FIFO, a few fixed slots for small messages,
//    each published by a stamp in its first cache line;
//  - Doorbell: what a rank sleeps on (futex) while none of its FIFOs can move;
//  - OwnSegment / PeerSegment: the one file each rank owns in /dev/shm (a SegmentHeader with
//    pid, doorbell and abort flag, then one inbound FIFO per sender), as its owner maps it
//    and as a sender maps it.
//
// All of it is plain memory plus atomics, so it works across processes and between threads
// of one process alike.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "comm/fingerprint.h"
#include "runtime/clock.h"

namespace weft::comm::shm {

inline constexpr size_t kCacheLine = 64;
inline constexpr size_t kPage = 4096;

// ---- fences ----

// Waking a sleeper is Dekker's pattern: the publisher stores a position, then reads the peer's
// `sleeping` flag (Doorbell::nudge); the peer, going to sleep, stores `sleeping`, then re-reads
// the positions (Doorbell::sleep). Each side needs a store-load fence between its two steps,
// or both can miss the other's store: a lost wake-up.
//
//  - symmetric: both sides use seq_cst. On the publisher's side that is a locked instruction
//    that stalls until the cache line arrives from the peer, in every message: about a third of
//    an 8-byte allreduce on 2 ranks.
//  - asymmetric: the publisher only keeps the compiler from reordering (free), and the rank
//    about to sleep, which has already waited tens of microseconds, makes every CPU that runs a
//    process of the job execute a full fence: membarrier(2), about 1.3 us here.
//
// Asymmetric fences only cover processes that registered for them, so each rank records in its
// SegmentHeader whether it did, and a transport uses them only when every rank of its group did.
enum class Fences : uint8_t { symmetric, asymmetric };

// Registers this process for asymmetric fences (the first call in each process does the work).
// False where the kernel lacks membarrier's global expedited command or a seccomp policy
// refuses it.
bool register_asymmetric_fences();

// ---- FIFO ----

// The shared half of a FIFO. Positions count bytes since the start and only grow (64 bits do
// not wrap in practice), so used = write - read with no full/empty ambiguity and the offset in
// the data area is pos & (capacity - 1). Each position sits on its own cache line: the
// producer's and the consumer's stores must not fight over one line.
struct RingControl {
  alignas(kCacheLine) std::atomic<uint64_t> write_pos{0};  // stored by the producer only
  alignas(kCacheLine) std::atomic<uint64_t> read_pos{0};   // stored by the consumer only
  alignas(kCacheLine) std::atomic<uint64_t> mail_consumed{0};  // mailbox: by the consumer only
  // Single-copy messages (shm_cma.cc) the consumer has read straight from the producer's
  // memory: the producer's buffer is free again once this count reaches its message.
  alignas(kCacheLine) std::atomic<uint64_t> single_copy_read{0};  // by the consumer only
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared-memory atomics need lock-free");
static_assert(sizeof(RingControl) <= kPage, "RingControl must fit its control page");

// Where one FIFO lives in some mapping. `capacity` is a power of two.
struct RingView {
  RingControl* control = nullptr;
  std::byte* data = nullptr;
  uint64_t capacity = 0;
};

// The producer's cursor. It keeps its own copy of write_pos (it is the only writer) and the
// last read_pos it saw, so it only touches the consumer's cache line when the ring looks full.
class RingWriter {
 public:
  RingWriter() = default;
  RingWriter(RingView ring, Fences fences);

  // Copies up to `n` bytes that fit now; returns how many. A null `src` adds `n` bytes of
  // padding without writing them. The consumer sees them only after publish().
  size_t write(const void* src, size_t n);
  // Makes everything written so far visible to the consumer. Publishing once per batch rather
  // than per write() lets the consumer see a small message whole, in one cache-line transfer.
  void publish();
  // True if write() could move at least one byte now (reads the consumer's position).
  bool can_write();

 private:
  RingView ring_;
  Fences fences_ = Fences::symmetric;
  uint64_t write_pos_ = 0;
  uint64_t published_ = 0;
  uint64_t read_pos_seen_ = 0;
};

// The consumer's cursor: the mirror image of RingWriter.
class RingReader {
 public:
  RingReader() = default;
  RingReader(RingView ring, Fences fences);

  // Copies up to `n` available bytes out; returns how many. A null `dst` discards them
  // (padding). Their space returns to the producer only after publish().
  size_t read(void* dst, size_t n);
  // Hands the space of everything read so far back to the producer.
  void publish();
  // True if read() could move at least one byte now (reads the producer's position).
  bool can_read();

 private:
  RingView ring_;
  Fences fences_ = Fences::symmetric;
  uint64_t read_pos_ = 0;
  uint64_t published_ = 0;
  uint64_t write_pos_seen_ = 0;
};

// ---- mailbox ----

// A small message through the FIFO costs the reader two cache-line transfers in a row: first
// the line holding write_pos, then the data it announces. A mailbox slot announces itself: its
// stamp sits in the same line as the start of the message, so a reader that polls the stamp
// gets the frame header and a small payload in one transfer (on these machines one transfer
// between cores takes about 260 ns, a whole 8-byte allreduce on 2 ranks about twice that).
//
// Each producer/consumer pair has kMailboxSlots slots, used round robin. The producer fills a
// slot, then stores its stamp: a number the caller gives each message, which only grows, so a
// stale slot can never pass for the message the consumer waits for. The consumer counts the
// slots it has emptied in RingControl::mail_consumed; the producer reads that count only when
// the slots look full.
inline constexpr size_t kMailboxSlots = 16;
inline constexpr size_t kMailboxSlotBytes = 2048;

struct MailboxSlot {
  alignas(kCacheLine) std::atomic<uint64_t> stamp{0};  // 0: never written
  std::byte body[kMailboxSlotBytes - sizeof(uint64_t)];
};
static_assert(sizeof(MailboxSlot) == kMailboxSlotBytes);
inline constexpr size_t kMailboxBodyBytes = sizeof(MailboxSlot::body);
inline constexpr size_t kMailboxBytes = kMailboxSlots * kMailboxSlotBytes;

struct MailboxView {
  MailboxSlot* slots = nullptr;  // kMailboxSlots of them
  std::atomic<uint64_t>* consumed = nullptr;
};

class MailboxWriter {
 public:
  MailboxWriter() = default;
  MailboxWriter(MailboxView box, Fences fences);
  // True if a slot is free now (may read the consumer's count).
  bool can_post();
  // Copies `head` then `body` into the next slot (they must fit in kMailboxBodyBytes and
  // can_post() must be true), then publishes it under `stamp`.
  void post(uint64_t stamp, const void* head, size_t head_bytes, const void* body,
            size_t body_bytes);

 private:
  MailboxView box_;
  Fences fences_ = Fences::symmetric;
  uint64_t posted_ = 0;
  uint64_t consumed_seen_ = 0;
};

class MailboxReader {
 public:
  MailboxReader() = default;
  MailboxReader(MailboxView box, Fences fences);
  // The next slot's body if it holds message `stamp`, else null.
  const std::byte* peek(uint64_t stamp);
  // Empties the slot peek() returned and hands it back to the producer.
  void release();

 private:
  MailboxView box_;
  Fences fences_ = Fences::symmetric;
  uint64_t taken_ = 0;
};

// ---- doorbell ----

// What a rank sleeps on while none of its FIFOs can move: an event counter and a "sleeping"
// flag on one cache line, in the rank's own file.
//
// Data events do not touch the counter unless the owner sleeps: after publishing a position
// the peer calls nudge(), a read of `sleeping` from a line that stays in its cache while the
// owner is awake (the seq_cst position stores and loads make this race-free, see nudge()).
// Bumping a counter the owner keeps reading would cost a cache-line round trip per chunk, and
// that round trip is slow between cores. Rare events (abort, close) ring() unconditionally, so
// a key() taken before them no longer matches.
struct Doorbell {
  alignas(kCacheLine) std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> sleeping{0};

  uint32_t key() const { return seq.load(std::memory_order_acquire); }
  // After publishing a FIFO position the owner may be waiting for.
  void nudge();
  // After an event that owners must see even while awake (abort, close).
  void ring();
  // Owner only. Sleeps on the futex until rung or `until`. Before each sleep, with `sleeping`
  // already set and fenced (see Fences), it re-checks that the counter still equals `key` and
  // that still_idle() (which re-reads the FIFO positions) holds: a peer that published before
  // it could see `sleeping` did not wake us, so we must see its position instead. Returns false
  // when it gave up because of `until`.
  template <typename StillIdle>
  bool sleep(uint32_t key, Deadline until, Fences fences, StillIdle&& still_idle) {
    // seq_cst store, then seq_cst loads of seq and of the positions: pairs with nudge().
    sleeping.store(1, std::memory_order_seq_cst);
    if (fences == Fences::asymmetric && !fence_every_publisher()) until = soon(until);
    bool rung = true;
    while (seq.load(std::memory_order_seq_cst) == key && still_idle()) {
      if (!futex_wait(key, until)) {
        rung = false;
        break;
      }
    }
    sleeping.store(0, std::memory_order_relaxed);
    return rung;
  }

 private:
  // One FUTEX_WAIT on seq; false once `until` has passed.
  bool futex_wait(uint32_t key, Deadline until);
  // The heavy half of asymmetric fences: false if membarrier failed after registering, which
  // should not happen; the sleep is then cut short (soon()), so a lost wake-up costs a
  // millisecond instead of a hang.
  static bool fence_every_publisher();
  static Deadline soon(Deadline until);
};
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word must be 32 bits");

// ---- the per-message steps, inline: each is a few instructions that run once or more per
// message, and a call apiece cost an 8-byte allreduce about a tenth of its time ----

// Stores a position the peer may be about to sleep without (see Fences): nudge() follows.
inline void store_position(std::atomic<uint64_t>& position, uint64_t value, Fences fences) {
  if (fences == Fences::symmetric) {
    position.store(value, std::memory_order_seq_cst);
    return;
  }
  // Release: the bytes it announces (or our reads of the space it frees) come first. The
  // store-load order against nudge()'s read is the sleeper's membarrier's job.
  position.store(value, std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void RingWriter::publish() {
  if (published_ == write_pos_) return;
  published_ = write_pos_;
  // Release at least: the bytes become visible before the position that announces them.
  store_position(ring_.control->write_pos, write_pos_, fences_);
}

inline bool RingWriter::can_write() {
  if (write_pos_ - read_pos_seen_ < ring_.capacity) return true;
  // seq_cst: Doorbell::sleep() calls this after storing `sleeping`.
  read_pos_seen_ = ring_.control->read_pos.load(std::memory_order_seq_cst);
  return write_pos_ - read_pos_seen_ < ring_.capacity;
}

inline void RingReader::publish() {
  if (published_ == read_pos_) return;
  published_ = read_pos_;
  // Release at least: our reads of the data finish before the producer may reuse the space.
  store_position(ring_.control->read_pos, read_pos_, fences_);
}

inline bool RingReader::can_read() {
  if (write_pos_seen_ != read_pos_) return true;
  // seq_cst: Doorbell::sleep() calls this after storing `sleeping`.
  write_pos_seen_ = ring_.control->write_pos.load(std::memory_order_seq_cst);
  return write_pos_seen_ != read_pos_;
}

inline bool MailboxWriter::can_post() {
  if (posted_ - consumed_seen_ < kMailboxSlots) return true;
  // seq_cst: Doorbell::sleep() calls this after storing `sleeping`. Acquire semantics: the
  // consumer has finished reading the slot before we overwrite it.
  consumed_seen_ = box_.consumed->load(std::memory_order_seq_cst);
  return posted_ - consumed_seen_ < kMailboxSlots;
}

inline const std::byte* MailboxReader::peek(uint64_t stamp) {
  MailboxSlot& slot = box_.slots[taken_ % kMailboxSlots];
  // seq_cst rather than acquire: Doorbell::sleep() re-checks through here after storing
  // `sleeping`. On x86 both are a plain load.
  return slot.stamp.load(std::memory_order_seq_cst) == stamp ? slot.body : nullptr;
}

inline void MailboxReader::release() {
  ++taken_;
  // Release at least: our reads of the slot are done before the producer may reuse it (and
  // the producer may be waiting for a free slot).
  store_position(*box_.consumed, taken_, fences_);
}

inline void Doorbell::nudge() {
  // The caller has just stored a FIFO position (store_position); the owner, going to sleep,
  // stores `sleeping`, fences, and then re-reads the positions. With both sides fenced (see
  // Fences) at least one sees the other's store: either the owner sees the new position and
  // stays up, or we see `sleeping` and wake it. While the owner is awake this is one read of a
  // line that stays in our cache.
  if (sleeping.load(std::memory_order_seq_cst) != 0) ring();
}

// ---- the file a rank owns ----

inline constexpr size_t kReasonBytes = 1024;
inline constexpr uint32_t kFlagAborted = 1;  // reason[] holds why
inline constexpr uint32_t kFlagClosed = 2;   // the owner destroyed its transport

// What a rank says about its current op on the direct path (shm_direct.cc), in its own file where
// every peer reads it. `arrived` is stored last (release): a peer that reads the op's number
// there finds the fields beside it filled in for that op.
inline constexpr uint64_t kNotRegistered = ~uint64_t{0};
struct DirectState {
  alignas(kCacheLine) std::atomic<uint64_t> arrived{0};  // seq of the op described below
  uint64_t segment = kNotRegistered;  // registered segment holding the op's buffer
  uint64_t offset = 0;                // of the buffer in that segment
  uint64_t bytes = 0;                 // of the buffer
  comm::WireFingerprint fp{};         // the op's, to agree on it and name a mismatch
  // Notices this rank has sent its peers over the registered-memory channel (shm_arena.h): a
  // peer reads its channel, with system calls, only when this has moved since it last did.
  std::atomic<uint64_t> notices{0};
  // seq of the last op whose share of the work this rank has done.
  alignas(kCacheLine) std::atomic<uint64_t> written{0};
};

struct SegmentHeader {
  uint64_t magic = 0;
  uint32_t version = 0;
  int32_t rank = 0;
  int32_t size = 0;
  int32_t pid = 0;
  uint64_t pid_namespace = 0;  // inode of /proc/self/ns/pid: a pid means nothing outside it
  uint64_t ring_bytes = 0;     // capacity of each FIFO in this file
  uint64_t ring_stride = 0;    // one control page + the mailbox + ring_bytes of data
  uint64_t rings_offset = 0;   // FIFO from sender s at rings_offset + s * ring_stride
  uint32_t asymmetric_fences = 0;  // 1: the owner registered for them (see Fences)
  Doorbell doorbell;
  alignas(kCacheLine) std::atomic<uint32_t> flags{0};
  uint32_t abort_code = 0;         // encode_abort_code(): what peers fail with; before kFlagAborted
  char reason[kReasonBytes] = {};  // written before kFlagAborted is set
  DirectState direct;
  // Single-copy reads (shm_cma.cc): where, in the owner's address space, a peer finds `magic`
  // to test whether it may read the owner's memory; and what the owner found testing its
  // peers, written before the set-up barrier (kSingleCopy*).
  uint64_t probe_address = 0;
  uint32_t single_copy = 0;
};
inline constexpr uint32_t kSingleCopyUnknown = 0;
inline constexpr uint32_t kSingleCopyOn = 1;   // the owner can read every peer's memory
inline constexpr uint32_t kSingleCopyOff = 2;  // it cannot, or WEFT_SHM_CMA=0

// A move-only mmap'ed range, unmapped when dropped.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) : addr_(addr), len_(len) {}
  Mapping(Mapping&& o) noexcept;
  Mapping& operator=(Mapping&& o) noexcept;
  ~Mapping();
  std::byte* data() const { return static_cast<std::byte*>(addr_); }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

// Maps `len` bytes of `fd` at `offset`, read-write and shared, page tables populated now.
// Throws with `what` and errno's text.
Mapping map_shared(int fd, size_t len, size_t offset, const std::string& what);

// My file, created under `name` and mapped whole. The name stays linked in /dev/shm (so peers
// can open it) until unlink_name() or destruction. `who` prefixes error messages.
class OwnSegment {
 public:
  OwnSegment(std::string name, int rank, int size, uint64_t ring_bytes, const std::string& who);
  OwnSegment(const OwnSegment&) = delete;
  OwnSegment& operator=(const OwnSegment&) = delete;

  SegmentHeader& header() const { return *reinterpret_cast<SegmentHeader*>(map_.data()); }
  RingView inbound(int sender) const;
  MailboxView inbound_mailbox(int sender) const;
  void unlink_name();

 private:
  // The name while it is linked in /dev/shm; unlinks it when dropped, even when the
  // constructor throws half-way.
  struct LinkedName {
    std::string name;
    ~LinkedName();
  };
  LinkedName linked_;
  Mapping map_;
};

// Rank `rank`'s file as mapped by sender `me`: its header and the one FIFO in it that `me`
// writes. Checks that the file is what it should be.
class PeerSegment {
 public:
  PeerSegment() = default;
  PeerSegment(const std::string& name, int rank, int size, int me, const std::string& who);

  SegmentHeader& header() const { return *reinterpret_cast<SegmentHeader*>(header_map_.data()); }
  RingView outbound() const;
  MailboxView outbound_mailbox() const;

 private:
  Mapping header_map_;
  Mapping ring_map_;
  uint64_t ring_bytes_ = 0;
};

// Who created the file `name` ("/weft-..."), from its header: the pid, and whether that pid
// means anything to this process (the creator ran in this pid namespace). nullopt when the file
// is gone or not a weft file, or its creator has not finished writing the header yet.
struct SegmentOwner {
  int pid = 0;
  bool same_pid_namespace = false;
};
std::optional<SegmentOwner> segment_owner(const std::string& name);

}  // namespace weft::comm::shm
