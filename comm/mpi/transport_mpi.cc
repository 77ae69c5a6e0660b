// MPI transport: weft's non-blocking verbs on MPI_Isend/MPI_Irecv, so weft's ring, recursive
// doubling, chain and pairwise algorithms run over whatever MPI connects the ranks with.
//
// Messages: every message is two MPI messages to the same peer on the transport's private
// communicator, the 48-byte FrameHeader (tag kHeaderTag) then the payload (tag kPayloadTag, in
// pieces of at most 1 GiB since MPI counts are int). A receive posts both at once, the payload
// straight into the caller's buffer, so large messages still move with one copy (or none, with
// Open MPI's single-copy path). MPI keeps each tag's messages from one sender in order, which is
// the per-peer FIFO weft's contract asks for. The header is what lets a receive that does not
// match fail with InvalidArgument naming both ranks' collectives, as on tcp and shm; it costs
// one small eager message per message, which is noise beside the payload of a ring segment.
//
// Lone sends: a send posted while this transport has no receive in flight (Communicator::send,
// the root of a broadcast) is copied into a buffer the transport keeps, up to 4 MiB, and
// completes at once, as a send does on tcp or shm once the socket or FIFO has taken it; so
// `send(right); recv(left).wait()` on every rank works, although the communicator runs its ops
// one after another. MPI completes larger sends only once the peer receives them, so would
// deadlock there. The algorithms' sends, which always have their receive posted beside them,
// move straight from the caller's buffer. A staged send moves on whenever this process calls
// MPI (any communicator's op), or at once through Open MPI's single-copy path when the peer
// receives it.
//
// Threading: verbs come from one thread at a time (the communicator's), abort() from any;
// MPI_THREAD_MULTIPLE (see mpi_runtime.h) makes both safe. abort() only raises a flag and
// tells the peers; the verb thread fails the requests the next time it looks, within one
// back-off sleep (<= 250 us).
//
// Failures: a peer that calls abort() or fails is heard through an MpiAbortChannel. A peer
// that dies is Open MPI's business: mpirun ends the whole job when a rank dies, so there is
// nothing to detect here.
#include "comm/mpi/transport_mpi.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/mpi/backends.h"
#include "comm/mpi/mpi_abort_channel.h"
#include "runtime/idle_backoff.h"
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/buffer.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {

constexpr int kHeaderTag = 1;
constexpr int kPayloadTag = 2;
// Stall notices (stall_notice.h): a header alone, on a tag of their own, read only while this
// rank waits (judge_notices), so that a notice that no longer holds never stands in a
// receive's way. Each carries the sender's last send to this rank, which says whether the
// message a receive waits for had been posted before the sender stalled.
constexpr int kNoticeTag = 3;
// How often a waiting rank looks for stall notices.
constexpr auto kNoticeLook = std::chrono::milliseconds(20);
constexpr size_t kMaxPiece = size_t{1} << 30;
constexpr size_t kStagedSendBytes = size_t{4} << 20;
constexpr size_t kMinStagingBytes = 64 << 10;  // staging buffers grow at least this much
// Closing waits this long for staged sends (a peer that has yet to receive its last message)...
constexpr auto kStagedSendPatience = std::chrono::seconds(10);
// ... and this long for requests of an aborted op.
constexpr auto kClosePatience = std::chrono::milliseconds(100);

class MpiTransport final : public Transport {
 public:
  MpiTransport(MpiComm comm, Deadline deadline);
  ~MpiTransport() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  bool receive_first() const override { return true; }
  bool carries_stall_notices() const override { return true; }
  Request isend(int peer, const void* data, size_t bytes, const Fingerprint& fp) override;
  Request irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) override;
  bool test(Request r) override;
  void withdraw_notice(Request r) override;
  void quiesce() override;
  void wait_for_progress(const LazyDeadline& until) override;
  void abort(const std::string& reason) override { abort_with(ErrorCode::Aborted, reason); }
  void abort_with(ErrorCode code, const std::string& reason) override;

  const MpiComm& comm() const { return comm_; }

 private:
  enum class State : uint8_t { free, active, done, failed };
  struct Req {
    uint32_t generation = 0;  // bumped on reuse, so a stale id is caught
    State state = State::free;
    bool is_send = false;
    bool header_checked = false;  // receives: the arrived header matched what was posted
    bool staged = false;          // a lone send, moving from `staging`
    bool orphaned = false;  // a staged send or withdrawn notice nobody tests: frees itself
    int peer = 0;
    char* data = nullptr;
    size_t bytes = 0;
    Fingerprint fp;
    FrameHeader header;  // sends: what this rank announces; receives: what arrived
    MPI_Request header_request = MPI_REQUEST_NULL;
    std::vector<MPI_Request> pieces;  // the payload's requests (capacity kept across reuses)
    Buffer staging;                   // lone sends' copy (kept across reuses)
    ErrorCode code = ErrorCode::Internal;
    std::string error;
    // Tests every MPI request once, for requests whose outcome no longer matters (cancelled
    // receives complete at once; a send to a peer that stopped reading may not).
    void settle() {
      int done = 0;
      if (header_request != MPI_REQUEST_NULL) MPI_Test(&header_request, &done, MPI_STATUS_IGNORE);
      for (MPI_Request& p : pieces)
        if (p != MPI_REQUEST_NULL) MPI_Test(&p, &done, MPI_STATUS_IGNORE);
    }
    bool mpi_idle() const {
      return header_request == MPI_REQUEST_NULL &&
             std::all_of(pieces.begin(), pieces.end(),
                         [](MPI_Request r) { return r == MPI_REQUEST_NULL; });
    }
  };

  uint32_t post(bool is_send, int peer, char* data, size_t bytes, const Fingerprint& fp);
  bool advance(uint32_t slot);  // tests an active request; true when it finished
  void stage(Req& r);           // copies a lone send's payload aside
  void complete(uint32_t slot);
  void release_orphan(uint32_t slot);
  void fail(uint32_t slot, ErrorCode code, std::string message);
  void retire(uint32_t slot);
  uint32_t slot_of(Request r) const;
  std::string where(const Req& r) const;
  // Records the first failure of the transport; tells the peers when `tell_peers`. Any thread.
  void request_abort(const std::string& message, bool tell_peers,
                     ErrorCode code = ErrorCode::Aborted);
  void apply_abort();  // verb thread: fail every active request, cancel the receives
  // Reads the peers' stall notices and judges each against this rank's receive from that peer
  // whose header has not come; fails it and aborts on a deadlock.
  void judge_notices();

  MpiComm comm_;
  const int rank_, size_;
  MpiAbortChannel channel_;
  // MPI writes into `header` of active slots, so slots must never move: a deque, which keeps
  // its elements in place as it grows. Held by pointer so a destructor that cannot get MPI to
  // let go of a slot can leave it allocated (see ~MpiTransport).
  std::unique_ptr<std::deque<Req>> slots_ = std::make_unique<std::deque<Req>>();
  std::vector<uint32_t> free_;
  std::vector<uint32_t> active_;   // slots with requests in flight, for wait_for_progress
  int active_receives_ = 0;        // receives among them
  uint64_t completions_ = 0;       // requests finished (done or failed) so far
  uint64_t seen_completions_ = 0;  // ... when wait_for_progress last returned
  IdleBackoff backoff_;
  SendLedger ledger_;
  std::vector<FrameHeader> notices_;  // each peer's latest stall notice, while it may hold
  std::vector<bool> has_notice_;
  Clock::time_point next_notice_look_{};

  std::atomic<bool> aborted_{false};
  std::mutex abort_mu_;  // guards the three fields below
  std::string abort_message_;
  ErrorCode abort_code_ = ErrorCode::Aborted;
  bool abort_applied_ = false;
};

MpiTransport::MpiTransport(MpiComm comm, Deadline deadline)
    : comm_(std::move(comm)),
      rank_(comm_.rank()),
      size_(comm_.size()),
      channel_(comm_, deadline),
      ledger_(size_),
      notices_(static_cast<size_t>(size_)),
      has_notice_(static_cast<size_t>(size_), false) {
  for (int i = 0; i < 16; i++) {  // room for the usual few requests in flight, grown on demand
    slots_->emplace_back();
    free_.push_back(static_cast<uint32_t>(15 - i));
  }
  active_.reserve(64);
}

MpiTransport::~MpiTransport() {
  // Normally the only requests left are staged sends on their way to a peer that has yet to
  // receive them: keep MPI moving them for a while. After an abort, receives are cancelled and
  // sends given a moment. MPI may write into a slot's header while it is in flight, so slots
  // that MPI will not let go of are left allocated.
  Deadline until = Clock::now() + (aborted_.load() ? kClosePatience : kStagedSendPatience);
  for (Req& r : *slots_) {
    if (r.is_send || r.mpi_idle()) continue;
    if (r.header_request != MPI_REQUEST_NULL) MPI_Cancel(&r.header_request);
    for (MPI_Request& p : r.pieces)
      if (p != MPI_REQUEST_NULL) MPI_Cancel(&p);
  }
  for (;;) {
    bool busy = false;
    for (Req& r : *slots_) {
      if (r.mpi_idle()) continue;
      r.settle();
      busy = busy || !r.mpi_idle();
    }
    if (!busy) return;
    if (Clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (aborted_.load())
    WEFT_INFO("mpi transport of rank " << rank_ << " closed with requests of an aborted op in "
                                               "flight; leaving their buffers allocated");
  else
    WEFT_WARN("mpi transport of rank "
              << rank_ << " closed with sends that no peer received within "
              << std::chrono::seconds(kStagedSendPatience).count()
              << " s; leaving their buffers allocated");
  slots_.release();  // leaked on purpose: MPI may still read or write them
}

void MpiTransport::quiesce() {
  // Receives still posted belong to the failed op (or to ones after it, failed by the abort):
  // cancelled, they let go at once unless MPI is already moving their message, which it
  // finishes while this rank and the sender keep testing.
  if (aborted_.load()) apply_abort();
  for (Req& r : *slots_) {
    if (r.is_send || r.mpi_idle()) continue;
    if (r.header_request != MPI_REQUEST_NULL) MPI_Cancel(&r.header_request);
    for (MPI_Request& p : r.pieces)
      if (p != MPI_REQUEST_NULL) MPI_Cancel(&p);
  }
  const Deadline until = Clock::now() + kClosePatience;
  for (;;) {
    bool busy = false;
    for (Req& r : *slots_) {
      if (r.is_send || r.mpi_idle()) continue;
      r.settle();
      busy = busy || !r.mpi_idle();
    }
    if (!busy || Clock::now() >= until) return;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

std::string MpiTransport::where(const Req& r) const {
  return "rank " + std::to_string(rank_) + (r.is_send ? " sending " : " receiving ") +
         r.fp.describe() + (r.is_send ? " to rank " : " from rank ") + std::to_string(r.peer) +
         " over mpi";
}

Transport::Request MpiTransport::isend(int peer, const void* data, size_t bytes,
                                       const Fingerprint& fp) {
  uint32_t slot = post(true, peer, static_cast<char*>(const_cast<void*>(data)), bytes, fp);
  return (uint64_t{(*slots_)[slot].generation} << 32) | slot;
}

Transport::Request MpiTransport::irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) {
  uint32_t slot = post(false, peer, static_cast<char*>(data), bytes, fp);
  return (uint64_t{(*slots_)[slot].generation} << 32) | slot;
}

uint32_t MpiTransport::post(bool is_send, int peer, char* data, size_t bytes,
                            const Fingerprint& fp) {
  if (peer < 0 || peer >= size_ || peer == rank_)
    throw Error(ErrorCode::InvalidArgument, "mpi: rank " + std::to_string(rank_) + " cannot " +
                                                (is_send ? "send to" : "receive from") + " rank " +
                                                std::to_string(peer) + " in " + fp.describe() +
                                                " (group of " + std::to_string(size_) + ")");
  if (aborted_.load()) apply_abort();
  if (free_.empty()) {  // only when more requests are in flight than ever before
    uint32_t slot = static_cast<uint32_t>(slots_->size());
    slots_->emplace_back();
    free_.push_back(slot);
  }
  uint32_t slot = free_.back();
  free_.pop_back();
  Req& r = (*slots_)[slot];
  r.state = State::active;
  r.is_send = is_send;
  if (!is_send) active_receives_++;
  r.header_checked = false;
  r.staged = false;
  r.orphaned = false;
  r.peer = peer;
  r.data = data;
  r.bytes = bytes;
  r.fp = fp;
  r.pieces.clear();
  if (aborted_.load()) {
    std::lock_guard lock(abort_mu_);
    fail(slot, abort_code_, abort_message_);
    return slot;
  }

  if (is_send && active_receives_ == 0 && bytes <= kStagedSendBytes) stage(r);
  MPI_Comm c = comm_.get();
  data = r.data;
  int rc = MPI_SUCCESS;
  if (is_send) {
    r.header = ledger_.header(fp, bytes, peer);
    rc = MPI_Isend(&r.header, sizeof r.header, MPI_BYTE, peer, fp.stalled ? kNoticeTag : kHeaderTag,
                   c, &r.header_request);
  } else {
    rc = MPI_Irecv(&r.header, sizeof r.header, MPI_BYTE, peer, kHeaderTag, c, &r.header_request);
  }
  for (size_t off = 0; off < bytes && rc == MPI_SUCCESS; off += kMaxPiece) {
    int len = static_cast<int>(std::min(kMaxPiece, bytes - off));
    MPI_Request& p = r.pieces.emplace_back(MPI_REQUEST_NULL);
    rc = is_send ? MPI_Isend(data + off, len, MPI_BYTE, peer, kPayloadTag, c, &p)
                 : MPI_Irecv(data + off, len, MPI_BYTE, peer, kPayloadTag, c, &p);
  }
  active_.push_back(slot);
  if (rc != MPI_SUCCESS) {
    std::string message = where(r) + ": MPI could not post it: " + mpi_error_text(rc);
    fail(slot, ErrorCode::Internal, message);
    request_abort(message, true);
  }
  return slot;
}

void MpiTransport::stage(Req& r) {
  if (r.staging.size() < r.bytes) r.staging = Buffer(std::max(r.bytes, kMinStagingBytes));
  if (r.bytes) std::memcpy(r.staging.data(), r.data, r.bytes);
  r.data = static_cast<char*>(r.staging.data());
  r.staged = true;
}

bool MpiTransport::advance(uint32_t slot) {
  Req& r = (*slots_)[slot];
  if (r.state != State::active) return false;
  int rc = MPI_SUCCESS, done = 0;
  if (r.header_request != MPI_REQUEST_NULL) {
    rc = MPI_Test(&r.header_request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      fail(slot, ErrorCode::Internal, where(r) + ": MPI failed: " + mpi_error_text(rc));
      return true;
    }
    if (!done) return false;
  }
  if (!r.is_send && !r.header_checked) {
    try {
      check_frame(r.header, r.fp, r.bytes, rank_, r.peer, name());
    } catch (const Error& e) {
      // The peer sent something else: its payload cannot be trusted to fit what is posted, so
      // this receive fails and the transport aborts, telling the peers why.
      for (MPI_Request& p : r.pieces)
        if (p != MPI_REQUEST_NULL) MPI_Cancel(&p);
      fail(slot, e.code(), e.message());
      request_abort("rank " + std::to_string(rank_) + " aborted the mpi transport: " + e.message(),
                    true, e.code());
      return true;
    }
    r.header_checked = true;
  }
  if (!r.pieces.empty()) {
    rc = MPI_Testall(static_cast<int>(r.pieces.size()), r.pieces.data(), &done,
                     MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      fail(slot, ErrorCode::Internal, where(r) + ": MPI failed: " + mpi_error_text(rc));
      return true;
    }
    if (!done) return false;
  }
  complete(slot);
  return true;
}

void MpiTransport::complete(uint32_t slot) {
  Req& r = (*slots_)[slot];
  if (!r.is_send) active_receives_--;
  r.state = State::done;
  completions_++;
  if (r.orphaned) release_orphan(slot);
}

void MpiTransport::fail(uint32_t slot, ErrorCode code, std::string message) {
  Req& r = (*slots_)[slot];
  if (!r.is_send && r.state == State::active) active_receives_--;
  r.state = State::failed;
  r.code = code;
  r.error = std::move(message);
  completions_++;
  if (r.orphaned) {
    WEFT_DEBUG("a staged send failed after its op completed: " << r.error);
    release_orphan(slot);
  }
}

// A staged send is done in MPI too: its slot is free again. (Its entry in active_ goes at the
// next prune, so that loops over active_ are not disturbed.)
void MpiTransport::release_orphan(uint32_t slot) {
  Req& r = (*slots_)[slot];
  r.orphaned = false;
  r.error.clear();
  r.state = State::free;
  if (!r.mpi_idle()) r.settle();
  if (r.mpi_idle()) free_.push_back(slot);
}

uint32_t MpiTransport::slot_of(Request id) const {
  uint32_t slot = static_cast<uint32_t>(id);
  if (slot >= slots_->size() || (*slots_)[slot].generation != (id >> 32) ||
      (*slots_)[slot].state == State::free)
    throw Error(ErrorCode::InvalidArgument, "mpi: rank " + std::to_string(rank_) +
                                                " tested an unknown or already retired request");
  return slot;
}

bool MpiTransport::test(Request id) {
  if (aborted_.load()) apply_abort();
  uint32_t slot = slot_of(id);
  Req& r = (*slots_)[slot];
  if (r.state == State::active) {
    if (advance(slot)) {
      backoff_.progressed();
    } else if (r.staged) {
      // The caller's data is safe in the staging buffer: done, from the caller's view. The slot
      // moves on under a new generation (the caller's id is stale now) and frees itself.
      r.orphaned = true;
      r.generation++;
      return true;
    } else {
      return false;
    }
  }
  bool ok = r.state == State::done;
  ErrorCode code = r.code;
  std::string error = std::move(r.error);
  retire(slot);
  if (!ok) throw Error(code, error);
  return true;
}

// A notice goes on a tag of its own that only a waiting rank reads (judge_notices), so one
// left behind stands in no receive's way; but MPI cannot take a send back. So it is orphaned
// like a staged send: it frees its slot once MPI is done with it (release_orphan).
void MpiTransport::withdraw_notice(Request id) {
  uint32_t slot = slot_of(id);
  Req& r = (*slots_)[slot];
  if (r.state != State::active) return retire(slot);
  r.orphaned = true;
  r.generation++;
}

void MpiTransport::retire(uint32_t slot) {
  Req& r = (*slots_)[slot];
  r.error.clear();
  r.state = State::free;
  r.generation++;
  std::erase(active_, slot);
  if (!r.mpi_idle()) r.settle();
  // A failed request may leave MPI requests behind (a send to a peer that stopped reading):
  // that slot is never reused, so MPI cannot write into a later request's header.
  if (r.mpi_idle()) free_.push_back(slot);
}

void MpiTransport::wait_for_progress(const LazyDeadline& until) {
  // Something finished since the caller last slept: it may be what the caller waits for.
  if (completions_ != seen_completions_ || aborted_.load()) {
    seen_completions_ = completions_;
    return;
  }
  for (;;) {
    bool finished = false;
    for (size_t i = 0; i < active_.size(); i++) finished = advance(active_[i]) || finished;
    std::erase_if(active_, [this](uint32_t s) { return (*slots_)[s].state == State::free; });
    if (finished || aborted_.load()) {
      backoff_.progressed();
      seen_completions_ = completions_;
      return;
    }
    // Only after the data: a peer that sent its last message and then aborted must not fail an
    // op that its message completes.
    if (std::string notice = channel_.poll(); !notice.empty()) {
      // Every peer heard the aborting rank itself.
      request_abort(notice, false, channel_.notice_code());
      return;
    }
    Clock::time_point now = Clock::now();
    if (active_receives_ > 0 && now >= next_notice_look_) {
      next_notice_look_ = now + kNoticeLook;
      judge_notices();
      if (aborted_.load()) return;
    }
    if (now >= until.get()) return;
    backoff_.idle(until.get());
  }
}

void MpiTransport::judge_notices() {
  for (;;) {
    int found = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kNoticeTag, comm_.get(), &found, &status) != MPI_SUCCESS ||
        !found)
      break;
    const int from = status.MPI_SOURCE;
    MPI_Recv(&notices_[from], sizeof(FrameHeader), MPI_BYTE, from, kNoticeTag, comm_.get(),
             MPI_STATUS_IGNORE);
    has_notice_[from] = true;
  }
  for (uint32_t slot : active_) {
    Req& r = (*slots_)[slot];
    if (r.state != State::active || r.is_send || r.header_checked || !has_notice_[r.peer]) continue;
    try {
      if (judge_notice(notices_[r.peer], r.fp, ledger_.sent(r.peer), rank_, r.peer, name()) ==
          NoticeVerdict::stale)
        has_notice_[r.peer] = false;
    } catch (const Error& e) {
      if (r.header_request != MPI_REQUEST_NULL) MPI_Cancel(&r.header_request);
      for (MPI_Request& p : r.pieces)
        if (p != MPI_REQUEST_NULL) MPI_Cancel(&p);
      fail(slot, e.code(), e.message());
      request_abort("rank " + std::to_string(rank_) + " aborted the mpi transport: " + e.message(),
                    true, e.code());
      return;
    }
  }
}

void MpiTransport::request_abort(const std::string& message, bool tell_peers, ErrorCode code) {
  {
    std::lock_guard lock(abort_mu_);
    if (aborted_.load()) return;  // the first failure is the one everybody reports
    abort_message_ = message;
    abort_code_ = code;
    aborted_.store(true);
  }
  if (tell_peers) channel_.notify_peers(message, code);
}

void MpiTransport::abort_with(ErrorCode code, const std::string& reason) {
  request_abort(reason, true, code);
}

void MpiTransport::apply_abort() {
  std::string message;
  ErrorCode code;
  {
    std::lock_guard lock(abort_mu_);
    if (abort_applied_) return;
    abort_applied_ = true;
    message = abort_message_;
    code = abort_code_;
  }
  for (uint32_t slot : active_) {
    Req& r = (*slots_)[slot];
    if (r.state != State::active || r.orphaned) continue;  // staged sends go on regardless
    // Receives are cancelled (local in MPI); a send cannot be taken back and finishes or not
    // on its own. Either way the slot keeps its MPI requests until MPI lets go of them.
    if (!r.is_send) {
      if (r.header_request != MPI_REQUEST_NULL) MPI_Cancel(&r.header_request);
      for (MPI_Request& p : r.pieces)
        if (p != MPI_REQUEST_NULL) MPI_Cancel(&p);
    }
    fail(slot, code, message);
  }
}

}  // namespace

std::unique_ptr<Transport> make_mpi_transport(MpiComm comm, Deadline deadline) {
  return std::make_unique<MpiTransport>(std::move(comm), deadline);
}

std::unique_ptr<Transport> make_mpi_transport(const TransportSetup& setup) {
  if (setup.parent) {
    const auto* parent = dynamic_cast<const MpiTransport*>(setup.parent);
    if (!parent)
      throw Error(ErrorCode::Internal, "mpi transport: rank " + std::to_string(setup.rank) +
                                           " was asked to split a " + setup.parent->name() +
                                           " group; only an mpi group splits into mpi groups");
    MpiComm comm = parent->comm().create_group(setup.parent_ranks, setup.deadline);
    if (comm.rank() != setup.rank || comm.size() != setup.size)
      throw Error(ErrorCode::Internal,
                  "mpi transport: split gave rank " + std::to_string(comm.rank()) + " of " +
                      std::to_string(comm.size()) + " where weft expects rank " +
                      std::to_string(setup.rank) + " of " + std::to_string(setup.size));
    return std::make_unique<MpiTransport>(std::move(comm), setup.deadline);
  }
  auto runtime = MpiRuntime::acquire();
  if (runtime->world_size() != setup.size || runtime->world_rank() != setup.rank)
    throw Error(ErrorCode::InvalidArgument,
                "mpi transport: weft sees rank " + std::to_string(setup.rank) + " of " +
                    std::to_string(setup.size) + " but MPI sees rank " +
                    std::to_string(runtime->world_rank()) + " of " +
                    std::to_string(runtime->world_size()) +
                    "; backends mpi and mpi-ring need the job started by mpirun (mpirun -np N "
                    "prog --backend mpi-ring)");
  return std::make_unique<MpiTransport>(MpiComm::dup_world(std::move(runtime), setup.deadline),
                                        setup.deadline);
}

}  // namespace weft::comm
