// Native MPI backend: each weft collective is the MPI library's own (MPI_Allreduce, MPI_Bcast,
// MPI_Reduce, MPI_Allgather, MPI_Reduce_scatter_block, MPI_Alltoall), on a private copy of the
// job's communicator; split is MPI_Comm_split (on a thread of its own, so that a deadline can end
// the wait for it: MPI has no non-blocking split).
//
// Every collective is issued in its non-blocking MPI-3 form (MPI_Iallreduce, ...) and polled
// with MPI_Test: the same algorithms run, but a blocking call could neither honour weft's
// deadline nor abort(), and Open MPI's blocking wait spins a core, which starves the other
// ranks when ranks outnumber cores. Polling sleeps when idle (IdleBackoff).
//
// Agreement without a round trip per op. Every collective gathers the ranks' fingerprints (op,
// dtype, count, root, sequence number: 32 bytes per rank, MPI_Iallgather) on a communicator of
// their own (fp_comm_), so ranks that disagree fail with InvalidArgument naming both instead of
// MPI reading past a buffer or hanging. How the exchange and the op meet depends on the op's size
// (kOverlapBytes, decided from the fingerprint alone, so every rank that agrees takes the same
// path):
//  - small ops post the exchange and the op together and wait for both: the op costs one
//    latency, not two. The op runs on the backend's staging buffer (the input copied in, the
//    result copied out once both completed and the fingerprints agree), never on the caller's
//    memory: when the ranks disagree, MPI has already started the mismatched op and cannot
//    cancel it, so it may still write later (a receive a peer completes afterwards); it then
//    writes into staging that the backend abandons, never into a buffer its caller has freed.
//    Each rank sizes its own receives from its own arguments and MPI truncates (MPI_ERR_TRUNCATE)
//    rather than write past a receive buffer, so the staging is never overrun either
//    (docs/architecture.md, "Agreement on native backends").
//  - large ops wait for the exchange first, as a barrier, and only then hand the caller's buffers
//    to MPI: the copies would cost more than the round trip, which is noise beside them.
// After a disagreement the communicator is unusable (its mismatched op may still be pending in
// MPI), as after a timeout.
//
// MPI cannot cancel a collective. After a timeout or abort the request is left to MPI, which may
// still write into the op's output buffer; the backend refuses every later op (Aborted), and
// the job is expected to end (under mpirun, a rank that exits with an error ends the job).
//
// f16 and bf16 reduce through weft's own MPI_Op (MpiRuntime::reduce_op); avg is a sum followed
// by kernels::cpu::scale_down, as in weft's algorithms.
#include <atomic>
#include <climits>
#include <cstring>
#include <mutex>
#include <vector>

#include "comm/mpi/backends.h"
#include "comm/mpi/mpi_abort_channel.h"
#include "comm/mpi/mpi_comm.h"
#include "comm/mpi/transport_mpi.h"
#include "comm/native_backend.h"
#include "comm/stall_notice.h"
#include "kernels/reduce.h"
#include "runtime/error.h"
#include "runtime/idle_backoff.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

// MPI counts are int: elementwise ops go in pieces of at most this many elements.
constexpr size_t kMaxCount = INT_MAX;
// Ops that move at most this many bytes per rank (input and output together) overlap their
// fingerprint exchange and run on staging; larger ones agree first (see the top of the file).
// Copying 64 KiB in and out takes a few microseconds, about one round trip of the exchange
// between ranks on one node: above it the copies would cost more than overlapping saves.
constexpr size_t kOverlapBytes = size_t{64} << 10;

class NativeMpiBackend final : public NativeBackend {
 public:
  // Collective over `comm`'s ranks (it makes private copies of it) until `deadline`.
  NativeMpiBackend(MpiComm comm, Deadline deadline);
  ~NativeMpiBackend() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  bool moves_device_memory() const override { return false; }
  void check_agreement(const NativeOp& op) override;
  void allreduce(const void* in, void* out, size_t count, DType dtype, ReduceOp reduce,
                 const NativeOp& op) override;
  void broadcast(void* data, size_t count, DType dtype, int root, const NativeOp& op) override;
  void reduce(const void* in, void* out, size_t count, DType dtype, ReduceOp reduce, int root,
              const NativeOp& op) override;
  void allgather(const void* in, void* out, size_t count, DType dtype,
                 const NativeOp& op) override;
  void reduce_scatter(const void* in, void* out, size_t count, DType dtype, ReduceOp reduce,
                      const NativeOp& op) override;
  void alltoall(const void* in, void* out, size_t count, DType dtype,
                const NativeOp& op) override;
  void send(const void* data, size_t bytes, int peer, const NativeOp& op) override;
  void recv(void* data, size_t bytes, int peer, const NativeOp& op) override;
  void batch_p2p(std::span<const NativeMessage> messages, const NativeOp& op) override;
  std::unique_ptr<NativeBackend> split(int color, int key, Deadline deadline) override;
  void abort(const std::string& reason) override { abort_with(ErrorCode::Aborted, reason); }
  void abort_with(ErrorCode code, const std::string& reason) override;

 private:
  std::string where(const NativeOp& op) const {
    return "rank " + std::to_string(rank_) + ": " + op.fp.describe() + " over mpi";
  }
  void check_usable(const NativeOp& op);
  // Checks that MPI accepted a posted request.
  void started(int rc, const char* call, const NativeOp& op);
  // Polls `request` until it completes. Throws Timeout at the deadline, Aborted after abort()
  // or a peer's abort notice; the request is then left to MPI.
  void finish(MPI_Request& request, const char* call, const NativeOp& op);
  // Throws, leaving `pending` to MPI, when the op is aborted, a peer gave notice or the deadline
  // passed; otherwise returns.
  void stop_if_interrupted(MPI_Request& pending, const char* call, const NativeOp& op);
  void abandon(MPI_Request& request);
  // The fingerprint exchange: posted on fp_comm_, then (once complete) compared, throwing
  // InvalidArgument naming two ranks that disagree.
  MPI_Request post_fingerprints(const NativeOp& op);
  void compare_fingerprints();
  // Whether an op moving `bytes` per rank overlaps its exchange (same on every rank that agrees).
  static bool overlaps(size_t bytes) { return bytes <= kOverlapBytes; }
  // kOverlapBytes of staging for small ops, owned by the backend (and abandoned with it after a
  // failure).
  std::byte* staging();
  // A small op: posts the fingerprint exchange and then the op (`post(&request)`, returning MPI's
  // result; it may leave the request null when nothing moves), waits for the exchange, throwing
  // InvalidArgument when it shows a disagreement, then for the op.
  template <typename Post>
  void overlapped(const NativeOp& op, const char* call, Post post);
  // The per-rank block counts of allgather, reduce_scatter and alltoall must fit an int.
  void check_block_count(size_t count, const NativeOp& op) const;
  // Records the first failure; later ops fail with `code` (Aborted, or InvalidArgument when
  // ranks disagreed) carrying it.
  void poison(const std::string& reason, ErrorCode code = ErrorCode::Aborted);
  MPI_Datatype type(DType t) const { return MpiRuntime::datatype(t); }
  MPI_Op mpi_op(DType t, ReduceOp r) const { return comm_.runtime()->reduce_op(t, r); }

  MpiComm comm_;
  const int rank_, size_;
  MpiAbortChannel channel_;
  std::unique_ptr<Transport> p2p_;  // send/recv, with the mpi transport's header checks
  MpiComm fp_comm_;                 // the fingerprint exchanges, apart from the ops they check
  IdleBackoff backoff_;
  // The exchange's buffers, reused: every rank's fingerprint, then this rank's own (index
  // size_). On the heap, so that a failed exchange can leave them to MPI (see the destructor).
  std::unique_ptr<WireFingerprint[]> exchange_;
  std::vector<Fingerprint> fingerprints_;
  std::unique_ptr<std::byte[]> staging_;  // small ops' data, kOverlapBytes, made at first use
  std::vector<MPI_Request> abandoned_;    // requests of failed ops, never waited for

  std::atomic<bool> aborted_{false};
  std::mutex abort_mu_;
  std::string abort_reason_;
  ErrorCode abort_code_ = ErrorCode::Aborted;
};

NativeMpiBackend::NativeMpiBackend(MpiComm comm, Deadline deadline)
    : comm_(std::move(comm)),
      rank_(comm_.rank()),
      size_(comm_.size()),
      channel_(comm_, deadline),
      p2p_(make_mpi_transport(comm_.dup(deadline), deadline)),
      fp_comm_(comm_.dup(deadline)),
      exchange_(std::make_unique<WireFingerprint[]>(static_cast<size_t>(size_) + 1)),
      fingerprints_(static_cast<size_t>(size_)) {}

NativeMpiBackend::~NativeMpiBackend() {
  // A failed op's request may still progress later, writing into the fingerprint buffers or the
  // staging and sending on its communicator: leave them all to MPI (at most kOverlapBytes and
  // two communicators, only after a failure).
  if (abandoned_.empty()) return;
  exchange_.release();
  staging_.release();
  comm_.abandon();
  fp_comm_.abandon();
}

void NativeMpiBackend::poison(const std::string& reason, ErrorCode code) {
  std::lock_guard lock(abort_mu_);
  if (aborted_.load()) return;
  abort_reason_ = reason;
  abort_code_ = code;
  aborted_.store(true);
}

void NativeMpiBackend::abort_with(ErrorCode code, const std::string& reason) {
  poison(reason, code);
  channel_.notify_peers(reason, code);
  p2p_->abort_with(code, reason);
}

void NativeMpiBackend::check_usable(const NativeOp& op) {
  if (!aborted_.load()) return;
  std::lock_guard lock(abort_mu_);
  throw Error(abort_code_, where(op) + " issued after the communicator failed: " + abort_reason_);
}

void NativeMpiBackend::started(int rc, const char* call, const NativeOp& op) {
  check_mpi(rc, call, rank_, op.fp.describe() + " over mpi");
}

void NativeMpiBackend::abandon(MPI_Request& request) {
  if (request == MPI_REQUEST_NULL) return;
  abandoned_.push_back(request);
  request = MPI_REQUEST_NULL;
}

void NativeMpiBackend::stop_if_interrupted(MPI_Request& pending, const char* call,
                                           const NativeOp& op) {
  std::string failure;
  ErrorCode code = ErrorCode::Aborted;
  if (aborted_.load()) {
    std::lock_guard lock(abort_mu_);
    failure = where(op) + " aborted: " + abort_reason_;
    code = abort_code_;
  } else if (std::string notice = channel_.poll(); !notice.empty()) {
    failure = where(op) + " failed: " + notice;
    code = channel_.notice_code();
    poison(notice, code);
    p2p_->abort_with(code, notice);
  } else if (Clock::now() >= op.deadline) {
    code = ErrorCode::Timeout;
    failure = where(op) + " (" + call +
              ") timed out: another rank is stuck, slower, dead or calling a different "
              "collective; MPI cannot cancel a collective, so this communicator is unusable "
              "now; raise WEFT_TIMEOUT if the ranks are only slow";
    poison(failure);
  }
  if (failure.empty()) return;
  abandon(pending);
  throw Error(code, failure);
}

void NativeMpiBackend::finish(MPI_Request& request, const char* call, const NativeOp& op) {
  for (;;) {
    int done = 0;
    int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      std::string message = where(op) + ": " + call + " failed: " + mpi_error_text(rc);
      poison(message);
      throw Error(ErrorCode::Internal, message);
    }
    if (done) {
      backoff_.progressed();
      return;
    }
    stop_if_interrupted(request, call, op);
    backoff_.idle(op.deadline);
  }
}

void NativeMpiBackend::check_block_count(size_t count, const NativeOp& op) const {
  if (count > kMaxCount)
    throw Error(ErrorCode::InvalidArgument,
                where(op) + ": " + std::to_string(count) +
                    " elements per rank exceed what one MPI call takes (INT_MAX); split the "
                    "tensor, or use backend mpi-ring");
}

MPI_Request NativeMpiBackend::post_fingerprints(const NativeOp& op) {
  WireFingerprint* all = exchange_.get();
  WireFingerprint* mine = all + size_;
  *mine = encode(op.fp);
  MPI_Request request = MPI_REQUEST_NULL;
  static_assert(sizeof(WireFingerprint) == 4 * sizeof(uint64_t));
  started(MPI_Iallgather(mine, 4, MPI_UINT64_T, all, 4, MPI_UINT64_T, fp_comm_.get(), &request),
          "MPI_Iallgather of the ranks' fingerprints", op);
  return request;
}

void NativeMpiBackend::compare_fingerprints() {
  const WireFingerprint* all = exchange_.get();
  for (int r = 0; r < size_; r++) fingerprints_[r] = decode(all[r]);
  std::string why = describe_disagreement(rank_, "mpi", fingerprints_.data(), size_);
  if (why.empty()) return;
  poison(why, ErrorCode::InvalidArgument);
  throw Error(ErrorCode::InvalidArgument, why);
}

void NativeMpiBackend::check_agreement(const NativeOp& op) {
  check_usable(op);
  MPI_Request request = post_fingerprints(op);
  finish(request, "MPI_Iallgather of the ranks' fingerprints", op);
  compare_fingerprints();
}

std::byte* NativeMpiBackend::staging() {
  if (!staging_) staging_ = std::make_unique<std::byte[]>(kOverlapBytes);
  return staging_.get();
}

template <typename Post>
void NativeMpiBackend::overlapped(const NativeOp& op, const char* call, Post post) {
  check_usable(op);
  MPI_Request fp = post_fingerprints(op);
  MPI_Request request = MPI_REQUEST_NULL;
  if (int rc = post(&request); rc != MPI_SUCCESS) {
    abandon(fp);
    started(rc, call, op);
  }
  // The exchange first, then the op. The op's request is never tested before the ranks agree:
  // Open MPI (4.1) reports a failed non-blocking collective (MPI_ERR_TRUNCATE, when a peer sent
  // more than this rank expects) through MPI_COMM_WORLD's error handler, which aborts the job,
  // whatever handler the op's own communicator has; a mismatched op is abandoned untested, and
  // its error stays in its request. Testing the exchange drives the op all the same: every
  // MPI_Test progresses every pending request, so the op runs while the exchange completes.
  try {
    finish(fp, "MPI_Iallgather of the ranks' fingerprints", op);
    compare_fingerprints();
  } catch (const Error&) {
    abandon(request);  // the mismatched op may never complete: MPI keeps it
    throw;
  }
  finish(request, call, op);
}

void NativeMpiBackend::allreduce(const void* in, void* out, size_t count, DType dtype,
                                 ReduceOp reduce, const NativeOp& op) {
  size_t esz = dtype_size(dtype);
  if (size_t bytes = count * esz; overlaps(bytes)) {
    std::byte* s = staging();
    std::memcpy(s, in, bytes);
    overlapped(op, "MPI_Iallreduce", [&](MPI_Request* request) {
      return MPI_Iallreduce(MPI_IN_PLACE, s, static_cast<int>(count), type(dtype),
                            mpi_op(dtype, reduce), comm_.get(), request);
    });
    std::memcpy(out, s, bytes);
  } else {
    check_agreement(op);
    for (size_t off = 0; off < count; off += kMaxCount) {
      int n = static_cast<int>(std::min(kMaxCount, count - off));
      const void* src = in == out ? MPI_IN_PLACE : static_cast<const char*>(in) + off * esz;
      MPI_Request request = MPI_REQUEST_NULL;
      started(MPI_Iallreduce(src, static_cast<char*>(out) + off * esz, n, type(dtype),
                             mpi_op(dtype, reduce), comm_.get(), &request),
              "MPI_Iallreduce", op);
      finish(request, "MPI_Iallreduce", op);
    }
  }
  if (reduce == ReduceOp::avg) kernels::cpu::scale_down(out, count, dtype, size_);
}

void NativeMpiBackend::broadcast(void* data, size_t count, DType dtype, int root,
                                 const NativeOp& op) {
  size_t esz = dtype_size(dtype);
  if (size_t bytes = count * esz; overlaps(bytes)) {
    std::byte* s = staging();
    if (rank_ == root) std::memcpy(s, data, bytes);
    overlapped(op, "MPI_Ibcast", [&](MPI_Request* request) {
      return MPI_Ibcast(s, static_cast<int>(count), type(dtype), root, comm_.get(), request);
    });
    if (rank_ != root) std::memcpy(data, s, bytes);
    return;
  }
  check_agreement(op);
  for (size_t off = 0; off < count; off += kMaxCount) {
    int n = static_cast<int>(std::min(kMaxCount, count - off));
    MPI_Request request = MPI_REQUEST_NULL;
    started(MPI_Ibcast(static_cast<char*>(data) + off * esz, n, type(dtype), root, comm_.get(),
                       &request),
            "MPI_Ibcast", op);
    finish(request, "MPI_Ibcast", op);
  }
}

void NativeMpiBackend::reduce(const void* in, void* out, size_t count, DType dtype, ReduceOp reduce,
                              int root, const NativeOp& op) {
  size_t esz = dtype_size(dtype);
  bool is_root = rank_ == root;
  if (size_t bytes = count * esz; overlaps(bytes)) {
    std::byte* s = staging();
    std::memcpy(s, in, bytes);
    overlapped(op, "MPI_Ireduce", [&](MPI_Request* request) {
      return MPI_Ireduce(is_root ? MPI_IN_PLACE : s, is_root ? s : nullptr, static_cast<int>(count),
                         type(dtype), mpi_op(dtype, reduce), root, comm_.get(), request);
    });
    if (is_root) std::memcpy(out, s, bytes);
  } else {
    check_agreement(op);
    for (size_t off = 0; off < count; off += kMaxCount) {
      int n = static_cast<int>(std::min(kMaxCount, count - off));
      const void* src =
          is_root && in == out ? MPI_IN_PLACE : static_cast<const char*>(in) + off * esz;
      void* dst = is_root ? static_cast<char*>(out) + off * esz : nullptr;
      MPI_Request request = MPI_REQUEST_NULL;
      started(
          MPI_Ireduce(src, dst, n, type(dtype), mpi_op(dtype, reduce), root, comm_.get(), &request),
          "MPI_Ireduce", op);
      finish(request, "MPI_Ireduce", op);
    }
  }
  if (is_root && reduce == ReduceOp::avg) kernels::cpu::scale_down(out, count, dtype, size_);
}

void NativeMpiBackend::allgather(const void* in, void* out, size_t count, DType dtype,
                                 const NativeOp& op) {
  const size_t block = count * dtype_size(dtype), n = static_cast<size_t>(size_);
  const int c = static_cast<int>(count);
  if (overlaps(block * n)) {
    std::byte* s = staging();
    std::memcpy(s + static_cast<size_t>(rank_) * block, in, block);
    overlapped(op, "MPI_Iallgather", [&](MPI_Request* request) {
      if (count == 0) return MPI_SUCCESS;
      return MPI_Iallgather(MPI_IN_PLACE, c, type(dtype), s, c, type(dtype), comm_.get(), request);
    });
    std::memcpy(out, s, block * n);
    return;
  }
  check_agreement(op);
  check_block_count(count, op);
  const char* mine = static_cast<const char*>(out) + static_cast<size_t>(rank_) * block;
  const void* src = in == mine ? MPI_IN_PLACE : in;
  MPI_Request request = MPI_REQUEST_NULL;
  started(MPI_Iallgather(src, c, type(dtype), out, c, type(dtype), comm_.get(), &request),
          "MPI_Iallgather", op);
  finish(request, "MPI_Iallgather", op);
}

void NativeMpiBackend::reduce_scatter(const void* in, void* out, size_t count, DType dtype,
                                      ReduceOp reduce, const NativeOp& op) {
  const size_t block = count * dtype_size(dtype), n = static_cast<size_t>(size_);
  const int c = static_cast<int>(count);
  if (overlaps(block * n)) {
    std::byte* s = staging();
    std::memcpy(s, in, block * n);
    overlapped(op, "MPI_Ireduce_scatter_block", [&](MPI_Request* request) {
      if (count == 0) return MPI_SUCCESS;
      return MPI_Ireduce_scatter_block(MPI_IN_PLACE, s, c, type(dtype), mpi_op(dtype, reduce),
                                       comm_.get(), request);
    });
    std::memcpy(out, s, block);
  } else {
    check_agreement(op);
    check_block_count(count, op);
    const void* src = in == out ? MPI_IN_PLACE : in;
    MPI_Request request = MPI_REQUEST_NULL;
    started(MPI_Ireduce_scatter_block(src, out, c, type(dtype), mpi_op(dtype, reduce), comm_.get(),
                                      &request),
            "MPI_Ireduce_scatter_block", op);
    finish(request, "MPI_Ireduce_scatter_block", op);
  }
  if (reduce == ReduceOp::avg) kernels::cpu::scale_down(out, count, dtype, size_);
}

void NativeMpiBackend::alltoall(const void* in, void* out, size_t count, DType dtype,
                                const NativeOp& op) {
  const size_t block = count * dtype_size(dtype), n = static_cast<size_t>(size_);
  const int c = static_cast<int>(count);
  if (overlaps(2 * block * n)) {
    std::byte* s = staging();
    std::byte* received = s + block * n;
    std::memcpy(s, in, block * n);
    overlapped(op, "MPI_Ialltoall", [&](MPI_Request* request) {
      if (count == 0) return MPI_SUCCESS;
      return MPI_Ialltoall(s, c, type(dtype), received, c, type(dtype), comm_.get(), request);
    });
    std::memcpy(out, received, block * n);
    return;
  }
  check_agreement(op);
  check_block_count(count, op);
  MPI_Request request = MPI_REQUEST_NULL;
  started(MPI_Ialltoall(in, c, type(dtype), out, c, type(dtype), comm_.get(), &request),
          "MPI_Ialltoall", op);
  finish(request, "MPI_Ialltoall", op);
}

void NativeMpiBackend::send(const void* data, size_t bytes, int peer, const NativeOp& op) {
  check_usable(op);
  wait(*p2p_, p2p_->isend(peer, data, bytes, op.fp), op.deadline, peer, op.fp);
}

void NativeMpiBackend::recv(void* data, size_t bytes, int peer, const NativeOp& op) {
  const NativeMessage m{false, data, bytes, peer, op.fp};
  batch_p2p(std::span<const NativeMessage>(&m, 1), op);
}

void NativeMpiBackend::batch_p2p(std::span<const NativeMessage> messages, const NativeOp& op) {
  check_usable(op);
  // Receives first: a send with its receive already posted on the other side skips MPI's
  // rendezvous wait, and a send posted beside a receive of this transport moves straight from
  // the caller's buffer (transport_mpi.cc: lone sends). MPI_Test drives every posted request,
  // so waiting for them one by one waits for none behind another.
  std::vector<Transport::Request> requests(messages.size());
  for (bool sends : {false, true})
    for (size_t i = 0; i < messages.size(); i++) {
      const NativeMessage& m = messages[i];
      if (m.is_send != sends) continue;
      requests[i] = m.is_send ? p2p_->isend(m.peer, m.data, m.bytes, m.fp)
                              : p2p_->irecv(m.peer, m.data, m.bytes, m.fp);
    }
  // Receives that wait long tell their peers (stall_notice.h).
  StallNotices notices;
  for (const NativeMessage& m : messages)
    if (!m.is_send) notices.add(m.peer, &m.fp);
  for (size_t i = 0; i < messages.size(); i++)
    wait(*p2p_, requests[i], op.deadline, messages[i].peer, messages[i].fp, &notices);
  notices.finish(*p2p_);
}

std::unique_ptr<NativeBackend> NativeMpiBackend::split(int color, int key, Deadline deadline) {
  // The split's check_agreement has just shown that every rank reached this call, so MPI's own
  // exchange is short; still, a rank stopped in between fails the others at the deadline.
  MpiComm child = comm_.split(color < 0 ? MPI_UNDEFINED : color, key, deadline);
  if (!child) return nullptr;
  return std::make_unique<NativeMpiBackend>(std::move(child), deadline);
}

}  // namespace

std::unique_ptr<NativeBackend> make_native_mpi_backend(const World& world, Deadline deadline) {
  auto runtime = MpiRuntime::acquire();
  if (runtime->world_size() != world.size || runtime->world_rank() != world.rank)
    throw Error(ErrorCode::InvalidArgument,
                "backend mpi: weft sees rank " + std::to_string(world.rank) + " of " +
                    std::to_string(world.size) + " (from " + world.launcher +
                    ") but MPI sees rank " + std::to_string(runtime->world_rank()) + " of " +
                    std::to_string(runtime->world_size()) +
                    "; backends mpi and mpi-ring need the job started by mpirun (mpirun -np N "
                    "prog --backend mpi)");
  return std::make_unique<NativeMpiBackend>(MpiComm::dup_world(std::move(runtime), deadline),
                                            deadline);
}

}  // namespace weft::comm
