#include "comm/transport/shm/shm_ring.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <new>
#include <utility>

#include "runtime/error.h"
#include "runtime/unique_fd.h"

namespace weft::comm::shm {
namespace {

// The futex word is the counter itself. Not FUTEX_PRIVATE: waiter and waker may be different
// processes mapping the same file.
uint32_t* futex_word(std::atomic<uint32_t>& a) { return reinterpret_cast<uint32_t*>(&a); }

constexpr uint64_t kSegmentMagic = 0x316d687374666577;  // "weftshm1"
// 2: a mailbox between control page and data; 3: SegmentHeader::asymmetric_fences;
// 5: SegmentHeader::direct; 7: single-copy reads; 8: DirectState::notices
constexpr uint32_t kLayoutVersion = 8;

size_t header_bytes() { return (sizeof(SegmentHeader) + kPage - 1) / kPage * kPage; }

uint64_t pid_namespace_id() {
  struct stat st {};
  return stat("/proc/self/ns/pid", &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

}  // namespace

// MAP_POPULATE: set the page tables up now rather than one fault at a time in the hot path.
Mapping map_shared(int fd, size_t len, size_t offset, const std::string& what) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) throw_errno(what);
  return Mapping(p, len);
}

bool register_asymmetric_fences() {
  // The registration belongs to a process (its memory map): a child forked after it registers
  // again. Registering twice is harmless, so racing threads need no lock.
  static std::atomic<pid_t> registered_for{0};
  static std::atomic<bool> registered{false};
  const pid_t me = getpid();
  if (registered_for.load(std::memory_order_acquire) == me) return registered.load();
  long commands = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  bool ok = commands >= 0 && (commands & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
            syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
  registered.store(ok);
  registered_for.store(me, std::memory_order_release);
  return ok;
}

RingWriter::RingWriter(RingView ring, Fences fences)
    : ring_(ring),
      fences_(fences),
      write_pos_(ring.control->write_pos.load(std::memory_order_relaxed)),
      published_(write_pos_),
      read_pos_seen_(ring.control->read_pos.load(std::memory_order_acquire)) {}

size_t RingWriter::write(const void* src, size_t n) {
  uint64_t free = ring_.capacity - (write_pos_ - read_pos_seen_);
  if (free < n) {
    // Acquire: the consumer has finished reading the bytes it released before we overwrite them.
    read_pos_seen_ = ring_.control->read_pos.load(std::memory_order_acquire);
    free = ring_.capacity - (write_pos_ - read_pos_seen_);
  }
  size_t k = static_cast<size_t>(std::min<uint64_t>(n, free));
  if (k == 0) return 0;
  if (src != nullptr) {
    size_t offset = static_cast<size_t>(write_pos_ & (ring_.capacity - 1));
    size_t first = std::min<size_t>(k, ring_.capacity - offset);
    std::memcpy(ring_.data + offset, src, first);
    if (k > first) std::memcpy(ring_.data, static_cast<const std::byte*>(src) + first, k - first);
  }
  write_pos_ += k;
  return k;
}

RingReader::RingReader(RingView ring, Fences fences)
    : ring_(ring),
      fences_(fences),
      read_pos_(ring.control->read_pos.load(std::memory_order_relaxed)),
      published_(read_pos_),
      write_pos_seen_(ring.control->write_pos.load(std::memory_order_acquire)) {}

size_t RingReader::read(void* dst, size_t n) {
  uint64_t available = write_pos_seen_ - read_pos_;
  if (available < n) {
    write_pos_seen_ = ring_.control->write_pos.load(std::memory_order_acquire);
    available = write_pos_seen_ - read_pos_;
  }
  size_t k = static_cast<size_t>(std::min<uint64_t>(n, available));
  if (k == 0) return 0;
  if (dst != nullptr) {
    size_t offset = static_cast<size_t>(read_pos_ & (ring_.capacity - 1));
    size_t first = std::min<size_t>(k, ring_.capacity - offset);
    std::memcpy(dst, ring_.data + offset, first);
    if (k > first) std::memcpy(static_cast<std::byte*>(dst) + first, ring_.data, k - first);
  }
  read_pos_ += k;
  return k;
}

MailboxWriter::MailboxWriter(MailboxView box, Fences fences)
    : box_(box),
      fences_(fences),
      posted_(box.consumed->load(std::memory_order_acquire)),
      consumed_seen_(posted_) {}

void MailboxWriter::post(uint64_t stamp, const void* head, size_t head_bytes, const void* body,
                         size_t body_bytes) {
  MailboxSlot& slot = box_.slots[posted_ % kMailboxSlots];
  std::memcpy(slot.body, head, head_bytes);
  if (body_bytes > 0) std::memcpy(slot.body + head_bytes, body, body_bytes);
  // Release at least: the body becomes visible before the stamp.
  store_position(slot.stamp, stamp, fences_);
  ++posted_;
}

MailboxReader::MailboxReader(MailboxView box, Fences fences)
    : box_(box), fences_(fences), taken_(box.consumed->load(std::memory_order_relaxed)) {}

bool Doorbell::fence_every_publisher() {
  return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
}

Deadline Doorbell::soon(Deadline until) {
  return std::min(until, Clock::now() + std::chrono::milliseconds(1));
}

void Doorbell::ring() {
  seq.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping.load(std::memory_order_seq_cst) != 0)
    syscall(SYS_futex, futex_word(seq), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

bool Doorbell::futex_wait(uint32_t key, Deadline until) {
  Deadline now = Clock::now();
  if (now >= until) return false;
  auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now).count();
  timespec ts{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
  // Returns at once (EAGAIN) if seq already moved; EINTR and spurious wake-ups return too and
  // the caller re-checks.
  syscall(SYS_futex, futex_word(seq), FUTEX_WAIT, key, &ts, nullptr, 0);
  return true;
}

Mapping::Mapping(Mapping&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (addr_ != nullptr) munmap(addr_, len_);
    addr_ = std::exchange(o.addr_, nullptr);
    len_ = std::exchange(o.len_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (addr_ != nullptr) munmap(addr_, len_);
}

OwnSegment::OwnSegment(std::string name, int rank, int size, uint64_t ring_bytes,
                       const std::string& who)
    : linked_{std::move(name)} {
  const std::string file = "/dev/shm" + linked_.name;
  size_t stride = kPage + kMailboxBytes + ring_bytes;
  size_t total = header_bytes() + static_cast<size_t>(size) * stride;
  shm_unlink(linked_.name.c_str());  // left by a crashed process that had our pid
  UniqueFd fd(shm_open(linked_.name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600));
  if (fd.get() < 0) {
    linked_.name.clear();  // not ours to unlink
    throw_errno(who + " could not create " + file);
  }
  // Reserve the memory now: a full /dev/shm is a clear error here, not a SIGBUS mid-run.
  if (int e = posix_fallocate(fd.get(), 0, static_cast<off_t>(total)); e != 0)
    throw Error(ErrorCode::Io, who + " could not reserve " + std::to_string(total) + " bytes for " +
                                   file + ": " + std::strerror(e) +
                                   "; /dev/shm is too small (docker: --shm-size) or lower "
                                   "WEFT_SHM_RING_BYTES");
  map_ = map_shared(fd.get(), total, 0, who + " could not map " + file);
  SegmentHeader* h = new (map_.data()) SegmentHeader();
  h->magic = kSegmentMagic;
  h->version = kLayoutVersion;
  h->rank = rank;
  h->size = size;
  h->pid = static_cast<int32_t>(getpid());
  h->pid_namespace = pid_namespace_id();
  h->asymmetric_fences = register_asymmetric_fences() ? 1 : 0;
  h->ring_bytes = ring_bytes;
  h->ring_stride = stride;
  h->rings_offset = header_bytes();
  h->probe_address = reinterpret_cast<uint64_t>(&h->magic);
  for (int s = 0; s < size; ++s) {
    new (inbound(s).control) RingControl();
    MailboxSlot* slots = inbound_mailbox(s).slots;
    for (size_t i = 0; i < kMailboxSlots; ++i) new (&slots[i]) MailboxSlot();
  }
}

// Each sender's area: a control page (RingControl), the mailbox, then the FIFO's data.
RingView OwnSegment::inbound(int sender) const {
  const SegmentHeader& h = header();
  std::byte* base = map_.data() + h.rings_offset + static_cast<size_t>(sender) * h.ring_stride;
  return RingView{reinterpret_cast<RingControl*>(base), base + kPage + kMailboxBytes,
                  h.ring_bytes};
}

MailboxView OwnSegment::inbound_mailbox(int sender) const {
  RingView ring = inbound(sender);
  return MailboxView{reinterpret_cast<MailboxSlot*>(reinterpret_cast<std::byte*>(ring.control) +
                                                    kPage),
                     &ring.control->mail_consumed};
}

void OwnSegment::unlink_name() {
  if (!linked_.name.empty()) shm_unlink(linked_.name.c_str());
  linked_.name.clear();
}

OwnSegment::LinkedName::~LinkedName() {
  if (!name.empty()) shm_unlink(name.c_str());
}

PeerSegment::PeerSegment(const std::string& name, int rank, int size, int me,
                         const std::string& who) {
  const std::string file = "/dev/shm" + name + " of rank " + std::to_string(rank);
  UniqueFd fd(shm_open(name.c_str(), O_RDWR, 0));
  if (fd.get() < 0) throw_errno(who + " could not open " + file);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) throw_errno(who + " could not stat " + file);
  size_t file_bytes = static_cast<size_t>(st.st_size);
  if (file_bytes < header_bytes())
    throw Error(ErrorCode::Corrupt, who + " found " + file + " too short to be a weft file");
  header_map_ = map_shared(fd.get(), header_bytes(), 0, who + " could not map " + file);
  const SegmentHeader& h = header();
  bool sane = h.magic == kSegmentMagic && h.version == kLayoutVersion && h.rank == rank &&
              h.size == size && h.ring_bytes >= kPage && (h.ring_bytes & (h.ring_bytes - 1)) == 0 &&
              h.ring_stride == kPage + kMailboxBytes + h.ring_bytes &&
              h.rings_offset == header_bytes() &&
              h.rings_offset + static_cast<uint64_t>(size) * h.ring_stride <= file_bytes;
  if (!sane)
    throw Error(ErrorCode::Corrupt,
                who + " found " + file + " with a layout it does not understand (rank " +
                    std::to_string(h.rank) + " of " + std::to_string(h.size) +
                    "); do two jobs share a job id, or are the ranks running different weft "
                    "versions?");
  ring_bytes_ = h.ring_bytes;
  ring_map_ = map_shared(fd.get(), h.ring_stride, h.rings_offset + me * h.ring_stride,
                         who + " could not map its FIFO in " + file);
}

RingView PeerSegment::outbound() const {
  return RingView{reinterpret_cast<RingControl*>(ring_map_.data()),
                  ring_map_.data() + kPage + kMailboxBytes, ring_bytes_};
}

MailboxView PeerSegment::outbound_mailbox() const {
  auto* control = reinterpret_cast<RingControl*>(ring_map_.data());
  return MailboxView{reinterpret_cast<MailboxSlot*>(ring_map_.data() + kPage),
                     &control->mail_consumed};
}

std::optional<SegmentOwner> segment_owner(const std::string& name) {
  UniqueFd fd(shm_open(name.c_str(), O_RDONLY, 0));
  struct stat st {};
  if (fd.get() < 0 || fstat(fd.get(), &st) != 0 || static_cast<size_t>(st.st_size) < header_bytes())
    return std::nullopt;
  void* p = mmap(nullptr, header_bytes(), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return std::nullopt;
  Mapping map(p, header_bytes());
  const auto& h = *reinterpret_cast<const SegmentHeader*>(map.data());
  // OwnSegment writes the magic first and the pid namespace last.
  if (h.magic != kSegmentMagic || h.pid_namespace == 0) return std::nullopt;
  return SegmentOwner{h.pid, h.pid_namespace == pid_namespace_id()};
}

}  // namespace weft::comm::shm
