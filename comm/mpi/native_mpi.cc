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
// Before each collective the ranks gather each other's fingerprint (op, dtype, count, root,
// sequence number) with one MPI_Iallgather of 32 bytes per rank, so ranks that disagree fail
// with InvalidArgument naming both instead of MPI reading past a buffer or hanging. It costs one
// small collective per op: a few microseconds on one node, noise beside a large allreduce, about
// doubling the time of a tiny one.
//
// MPI cannot cancel a collective. After a timeout or abort the request is left to MPI, which may
// still write into the op's output buffer; the backend refuses every later op (Aborted), and
// the job is expected to end (under mpirun, a rank that exits with an error ends the job).
//
// f16 and bf16 reduce through weft's own MPI_Op (MpiRuntime::reduce_op); avg is a sum followed
// by kernels::cpu::scale_down, as in weft's algorithms.
#include <atomic>
#include <climits>
#include <mutex>
#include <vector>

#include "comm/mpi/backends.h"
#include "comm/mpi/mpi_abort_channel.h"
#include "runtime/idle_backoff.h"
#include "comm/mpi/mpi_comm.h"
#include "comm/native_backend.h"
#include "comm/mpi/transport_mpi.h"
#include "kernels/reduce.h"
#include "runtime/error.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

// MPI counts are int: elementwise ops go in pieces of at most this many elements.
constexpr size_t kMaxCount = INT_MAX;

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
  IdleBackoff backoff_;
  // check_agreement's buffers, reused: every rank's fingerprint, then this rank's own (index
  // size_). On the heap, so that a failed exchange can leave them to MPI (see the destructor).
  std::unique_ptr<WireFingerprint[]> exchange_;
  std::vector<Fingerprint> fingerprints_;
  std::vector<MPI_Request> abandoned_;  // requests of failed ops, never waited for

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
      exchange_(std::make_unique<WireFingerprint[]>(static_cast<size_t>(size_) + 1)),
      fingerprints_(static_cast<size_t>(size_)) {}

NativeMpiBackend::~NativeMpiBackend() {
  // A failed op's request may still complete later and write into the fingerprint buffers:
  // leave them allocated (a few bytes per rank, only after a failure).
  if (!abandoned_.empty()) exchange_.release();
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
    if (!failure.empty()) {
      abandoned_.push_back(request);
      request = MPI_REQUEST_NULL;
      throw Error(code, failure);
    }
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

void NativeMpiBackend::check_agreement(const NativeOp& op) {
  check_usable(op);
  WireFingerprint* all = exchange_.get();
  WireFingerprint* mine = all + size_;
  *mine = encode(op.fp);
  MPI_Request request = MPI_REQUEST_NULL;
  static_assert(sizeof(WireFingerprint) == 4 * sizeof(uint64_t));
  started(MPI_Iallgather(mine, 4, MPI_UINT64_T, all, 4, MPI_UINT64_T, comm_.get(), &request),
          "MPI_Iallgather", op);
  finish(request, "MPI_Iallgather of the ranks' fingerprints", op);
  for (int r = 0; r < size_; r++) fingerprints_[r] = decode(all[r]);
  std::string why = describe_disagreement(rank_, "mpi", fingerprints_.data(), size_);
  if (!why.empty()) throw Error(ErrorCode::InvalidArgument, why);
}

void NativeMpiBackend::allreduce(const void* in, void* out, size_t count, DType dtype,
                                 ReduceOp reduce, const NativeOp& op) {
  check_usable(op);
  size_t esz = dtype_size(dtype);
  for (size_t off = 0; off < count; off += kMaxCount) {
    int n = static_cast<int>(std::min(kMaxCount, count - off));
    const void* src = in == out ? MPI_IN_PLACE : static_cast<const char*>(in) + off * esz;
    MPI_Request request = MPI_REQUEST_NULL;
    started(MPI_Iallreduce(src, static_cast<char*>(out) + off * esz, n, type(dtype),
                           mpi_op(dtype, reduce), comm_.get(), &request),
            "MPI_Iallreduce", op);
    finish(request, "MPI_Iallreduce", op);
  }
  if (reduce == ReduceOp::avg) kernels::cpu::scale_down(out, count, dtype, size_);
}

void NativeMpiBackend::broadcast(void* data, size_t count, DType dtype, int root,
                                 const NativeOp& op) {
  check_usable(op);
  size_t esz = dtype_size(dtype);
  for (size_t off = 0; off < count; off += kMaxCount) {
    int n = static_cast<int>(std::min(kMaxCount, count - off));
    MPI_Request request = MPI_REQUEST_NULL;
    started(MPI_Ibcast(static_cast<char*>(data) + off * esz, n, type(dtype), root, comm_.get(),
                       &request),
            "MPI_Ibcast", op);
    finish(request, "MPI_Ibcast", op);
  }
}

void NativeMpiBackend::reduce(const void* in, void* out, size_t count, DType dtype,
                              ReduceOp reduce, int root, const NativeOp& op) {
  check_usable(op);
  size_t esz = dtype_size(dtype);
  bool is_root = rank_ == root;
  for (size_t off = 0; off < count; off += kMaxCount) {
    int n = static_cast<int>(std::min(kMaxCount, count - off));
    const void* src = is_root && in == out ? MPI_IN_PLACE : static_cast<const char*>(in) + off * esz;
    void* dst = is_root ? static_cast<char*>(out) + off * esz : nullptr;
    MPI_Request request = MPI_REQUEST_NULL;
    started(MPI_Ireduce(src, dst, n, type(dtype), mpi_op(dtype, reduce), root, comm_.get(),
                        &request),
            "MPI_Ireduce", op);
    finish(request, "MPI_Ireduce", op);
  }
  if (is_root && reduce == ReduceOp::avg) kernels::cpu::scale_down(out, count, dtype, size_);
}

void NativeMpiBackend::allgather(const void* in, void* out, size_t count, DType dtype,
                                 const NativeOp& op) {
  check_usable(op);
  check_block_count(count, op);
  if (count == 0) return;  // every rank agreed on 0: nothing moves
  int n = static_cast<int>(count);
  const char* mine = static_cast<const char*>(out) + static_cast<size_t>(rank_) * count *
                                                         dtype_size(dtype);
  const void* src = in == mine ? MPI_IN_PLACE : in;
  MPI_Request request = MPI_REQUEST_NULL;
  started(MPI_Iallgather(src, n, type(dtype), out, n, type(dtype), comm_.get(), &request),
          "MPI_Iallgather", op);
  finish(request, "MPI_Iallgather", op);
}

void NativeMpiBackend::reduce_scatter(const void* in, void* out, size_t count, DType dtype,
                                      ReduceOp reduce, const NativeOp& op) {
  check_usable(op);
  check_block_count(count, op);
  if (count == 0) return;
  const void* src = in == out ? MPI_IN_PLACE : in;
  MPI_Request request = MPI_REQUEST_NULL;
  started(MPI_Ireduce_scatter_block(src, out, static_cast<int>(count), type(dtype),
                                    mpi_op(dtype, reduce), comm_.get(), &request),
          "MPI_Ireduce_scatter_block", op);
  finish(request, "MPI_Ireduce_scatter_block", op);
  if (reduce == ReduceOp::avg) kernels::cpu::scale_down(out, count, dtype, size_);
}

void NativeMpiBackend::alltoall(const void* in, void* out, size_t count, DType dtype,
                                const NativeOp& op) {
  check_usable(op);
  check_block_count(count, op);
  if (count == 0) return;
  int n = static_cast<int>(count);
  MPI_Request request = MPI_REQUEST_NULL;
  started(MPI_Ialltoall(in, n, type(dtype), out, n, type(dtype), comm_.get(), &request),
          "MPI_Ialltoall", op);
  finish(request, "MPI_Ialltoall", op);
}

void NativeMpiBackend::send(const void* data, size_t bytes, int peer, const NativeOp& op) {
  check_usable(op);
  wait(*p2p_, p2p_->isend(peer, data, bytes, op.fp), op.deadline, peer, op.fp);
}

void NativeMpiBackend::recv(void* data, size_t bytes, int peer, const NativeOp& op) {
  check_usable(op);
  wait(*p2p_, p2p_->irecv(peer, data, bytes, op.fp), op.deadline, peer, op.fp);
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
  for (size_t i = 0; i < messages.size(); i++)
    wait(*p2p_, requests[i], op.deadline, messages[i].peer, messages[i].fp);
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
