// Native NCCL backend: each weft collective is NCCL's own (ncclAllReduce, ncclBroadcast,
// ncclReduce, ncclAllGather, ncclReduceScatter; alltoall as grouped ncclSend/ncclRecv); split
// is ncclCommSplit. Buffers are device memory on the backend's GPU.
//
// An op: the NCCL call is enqueued on the backend's own stream (NCCL's non-blocking mode may
// first answer ncclInProgress, see nccl_comm.h); once NCCL has issued it, an event is recorded
// behind it, and the op thread polls that event (cudaEventQuery), NCCL's async error, the
// abort flag, the peers' abort notices and the deadline, sleeping between polls (IdleBackoff:
// yields for a short window after progress, then sleeps up to 1 ms). On the deadline, on
// abort() or when a peer fails, it calls ncclCommAbort (which ends NCCL's kernels, so unlike
// MPI nothing writes into the caller's buffers afterwards) and throws Timeout / Aborted /
// PeerLost naming the op in flight (kind, sequence number, dtype, count, reduce op, root). The
// communicator is then gone: later ops fail with Aborted.
//
// Agreement: every rank's Fingerprint (32 bytes, the same binary on every rank) goes through
// one ncclAllGather, whose size never depends on the op, on a communicator and stream of its own
// (fp_comm_, fp_stream_), enqueued with the op rather than before it: no host round trip between
// them, and a mismatched op hung on the GPU cannot hold the exchange back. A disagreement fails
// the op with InvalidArgument naming both, and ncclCommAbort ends the mismatched kernels, so
// nothing writes afterwards; meanwhile NCCL sizes every access to the caller's buffers from the
// local arguments (docs/architecture.md, "Agreement on native backends").
//
// avg: a sum followed by kernels::cuda::scale_down, for every dtype, as weft's other backends
// do. ncclAvg multiplies each input by 1/n rounded to the tensor's dtype before summing: in
// bf16 1/3 is 0.33398, which would inflate every averaged gradient by 0.2% on 3 ranks; and
// NCCL does not document how its integer avg rounds.
//
// send/recv: a 48-byte FrameHeader goes first, so a mismatched pair fails with InvalidArgument
// naming both sides before NCCL moves a payload of the wrong size (which NCCL does not check).
// Each send completes when the peer has received it: `send(right); recv(left)` on every rank
// deadlocks here; batch_p2p posts its messages as one NCCL group (the headers in one, then the
// payloads in another), which NCCL schedules at once.
#include <atomic>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "comm/nccl/backends.h"
#include "runtime/idle_backoff.h"  // IdleBackoff
#include "comm/native_backend.h"
#include "comm/nccl/nccl_comm.h"
#include "comm/rendezvous/store.h"
#include "comm/rendezvous/store_abort_channel.h"
#include "comm/wire.h"
#include "kernels/cuda/reduce.h"
#include "runtime/cuda_buffer.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_stream.h"
#include "runtime/error.h"
#include "runtime/pinned_buffer.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

static_assert(std::is_trivially_copyable_v<Fingerprint>);
constexpr size_t kFpBytes = sizeof(Fingerprint);

class NativeNcclBackend final : public NativeBackend {
 public:
  // Collective over `comm`'s ranks (it splits a communicator for the fingerprints off it).
  NativeNcclBackend(NcclComm comm, std::shared_ptr<Store> store, Deadline deadline);
  ~NativeNcclBackend() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "nccl"; }
  bool moves_device_memory() const override { return true; }
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
  void abort(const std::string& reason) override;

 private:
  std::string where(const NativeOp& op) const {
    return "rank " + std::to_string(rank_) + ": " + op.fp.describe() + " over nccl (cuda:" +
           std::to_string(device_) + ")";
  }
  // Throws Aborted after a failure or abort(), aborting the NCCL communicator if it is live.
  void check_usable(const NativeOp& op);
  // InvalidArgument unless `p` is device memory NCCL can use on this backend's GPU.
  void check_device_memory(const void* p, const char* role, const NativeOp& op) const;
  // Enqueues `issue` (NCCL calls, returning NCCL's result) on the stream, then `after` (CUDA
  // work that must follow it), and waits for both as described at the top of the file.
  template <typename Issue, typename After>
  void run(const NativeOp& op, const char* call, Issue issue, After after);
  template <typename Issue>
  void run(const NativeOp& op, const char* call, Issue issue) {
    run(op, call, issue, [] {});
  }
  // Records the failure, aborts the NCCL communicators, tells the peers, throws.
  [[noreturn]] void fail(ErrorCode code, const std::string& message);
  // fail() for NCCL's asynchronous error `state` of `call`.
  [[noreturn]] void fail_async(ncclResult_t state, const char* call, const NativeOp& op);
  // Throws (through fail) after abort(), a peer's notice, or at the deadline.
  void stop_if_interrupted(const NativeOp& op, const char* call);
  // The exchange: post enqueues it; poll advances it, true once none is pending (fails with
  // InvalidArgument naming two ranks that disagree).
  void post_fingerprints(const NativeOp& op);
  bool poll_fingerprints(const NativeOp& op);
  void poison(const std::string& reason);
  // avg as sum then divide (see the top of the file).
  static bool sums_then_divides(DType, ReduceOp reduce) { return reduce == ReduceOp::avg; }
  ncclRedOp_t nccl_op(DType dtype, ReduceOp reduce) const {
    return sums_then_divides(dtype, reduce) ? ncclSum : nccl_reduce_op(reduce);
  }
  void scale_down_if_needed(void* out, size_t count, DType dtype, ReduceOp reduce) {
    if (sums_then_divides(dtype, reduce))
      kernels::cuda::scale_down(out, count, dtype, size_, stream_.get());
  }

  NcclComm comm_;
  std::shared_ptr<Store> store_;  // this group's corner of the job's store
  const int rank_, size_, device_;
  CudaStream stream_;
  CudaEvent done_;
  StoreAbortChannel channel_;
  // The fingerprint exchange, and its buffers: every rank's fingerprint, then this rank's own
  // (index size_), on the host (pinned, for async copies) and on the device.
  NcclComm fp_comm_;
  CudaStream fp_stream_;
  CudaEvent fp_done_;
  enum class Exchange { idle, issued, copying } exchange_ = Exchange::idle;
  PinnedBuffer fp_host_;
  CudaBuffer fp_device_;
  std::vector<Fingerprint> fingerprints_;
  // send/recv's frame header, likewise.
  PinnedBuffer header_host_;
  CudaBuffer header_device_;
  // batch_p2p's frame headers, one per message: grown to the largest batch seen.
  PinnedBuffer batch_headers_host_;
  CudaBuffer batch_headers_device_;
  int splits_ = 0;
  IdleBackoff backoff_;

  std::atomic<bool> aborted_{false};
  std::mutex abort_mu_;
  std::string abort_reason_;
};

NativeNcclBackend::NativeNcclBackend(NcclComm comm, std::shared_ptr<Store> store, Deadline deadline)
    : comm_(std::move(comm)),
      store_(std::move(store)),
      rank_(comm_.rank()),
      size_(comm_.size()),
      device_(comm_.device()),
      stream_(device_),
      done_(device_),
      channel_(store_, rank_),
      fp_comm_(comm_.split(0, rank_, deadline, "rank " + std::to_string(rank_) + ": nccl")),
      fp_stream_(device_),
      fp_done_(device_),
      fp_host_((static_cast<size_t>(size_) + 1) * kFpBytes, device_),
      fp_device_((static_cast<size_t>(size_) + 1) * kFpBytes, device_),
      fingerprints_(static_cast<size_t>(size_)),
      header_host_(sizeof(FrameHeader), device_),
      header_device_(sizeof(FrameHeader), device_) {}

NativeNcclBackend::~NativeNcclBackend() {
  // No op runs now (the communicator stopped its executor first). A failed backend must not
  // finalize: its peers may be gone.
  if (!aborted_.load()) return;
  fp_comm_.abort();
  comm_.abort();
}

void NativeNcclBackend::poison(const std::string& reason) {
  std::lock_guard lock(abort_mu_);
  if (aborted_.load()) return;
  abort_reason_ = reason;
  aborted_.store(true);
}

void NativeNcclBackend::abort(const std::string& reason) {
  // Any thread: only flags it. The op thread calls ncclCommAbort (nccl_comm.h says why).
  poison(reason);
  channel_.notify_peers(reason);
}

void NativeNcclBackend::fail(ErrorCode code, const std::string& message) {
  poison(message);
  exchange_ = Exchange::idle;
  fp_comm_.abort();
  comm_.abort();
  channel_.notify_peers(message);
  throw Error(code, message);
}

void NativeNcclBackend::check_usable(const NativeOp& op) {
  if (!aborted_.load()) return;
  fp_comm_.abort();
  comm_.abort();
  std::lock_guard lock(abort_mu_);
  throw Error(ErrorCode::Aborted,
              where(op) + " issued after the communicator failed: " + abort_reason_);
}

void NativeNcclBackend::check_device_memory(const void* p, const char* role,
                                            const NativeOp& op) const {
  CudaDeviceGuard on(device_);  // a query on an unset thread would open a context on GPU 0
  cudaPointerAttributes attributes{};
  cudaError_t status = cudaPointerGetAttributes(&attributes, p);
  if (status != cudaSuccess) cudaGetLastError();
  bool on_device = status == cudaSuccess && (attributes.type == cudaMemoryTypeDevice ||
                                             attributes.type == cudaMemoryTypeManaged);
  if (on_device && attributes.device == device_) return;
  throw Error(ErrorCode::InvalidArgument,
              where(op) + ": the " + role + " buffer is " +
                  (on_device ? "on cuda:" + std::to_string(attributes.device)
                             : std::string("host memory")) +
                  "; backend nccl moves memory of this rank's GPU only: pass a tensor on cuda:" +
                  std::to_string(device_) + ", or use backend tcp, shm or mpi for cpu tensors");
}

void NativeNcclBackend::fail_async(ncclResult_t state, const char* call, const NativeOp& op) {
  std::string detail = ncclGetLastError(comm_.get());
  fail(state == ncclRemoteError ? ErrorCode::PeerLost : ErrorCode::Internal,
       where(op) + " (" + call + ", in flight) failed: " + ncclGetErrorString(state) +
           (detail.empty() ? "" : " (" + detail + ")") +
           (state == ncclRemoteError ? "; a peer rank failed or its connection broke: look "
                                       "for the first error in the other ranks' logs"
                                     : "; run with NCCL_DEBUG=WARN for NCCL's account"));
}

void NativeNcclBackend::stop_if_interrupted(const NativeOp& op, const char* call) {
  if (aborted_.load()) {
    std::unique_lock lock(abort_mu_);
    std::string reason = abort_reason_;
    lock.unlock();  // fail() takes it
    fail(ErrorCode::Aborted, where(op) + " (" + call + ", in flight) aborted: " + reason);
  }
  if (std::string notice = channel_.poll(); !notice.empty())
    fail(ErrorCode::Aborted, where(op) + " (" + call + ", in flight) failed: " + notice);
  if (Clock::now() >= op.deadline)
    fail(ErrorCode::Timeout,
         where(op) + " (" + call +
             ", in flight) timed out: another rank is stuck, slower, "
             "dead or calling a different collective; the nccl communicator was "
             "aborted and is unusable now; raise WEFT_TIMEOUT if the ranks are only "
             "slow");
}

void NativeNcclBackend::post_fingerprints(const NativeOp& op) {
  check_usable(op);
  CudaDeviceGuard on(device_);
  auto* host = static_cast<Fingerprint*>(fp_host_.data());
  char* device = static_cast<char*>(fp_device_.data());
  char* mine = device + static_cast<size_t>(size_) * kFpBytes;
  std::memcpy(&host[size_], &op.fp, kFpBytes);
  check_cuda_status(
      cudaMemcpyAsync(mine, &host[size_], kFpBytes, cudaMemcpyHostToDevice, fp_stream_.get()),
      where(op) + ": copying this rank's fingerprint to the GPU");
  ncclResult_t result =
      ncclAllGather(mine, device, kFpBytes, ncclUint8, fp_comm_.get(), fp_stream_.get());
  if (result != ncclSuccess && result != ncclInProgress)
    fail(ErrorCode::Internal, where(op) + ": ncclAllGather of the ranks' fingerprints failed: " +
                                  ncclGetErrorString(result));
  exchange_ = Exchange::issued;
}

bool NativeNcclBackend::poll_fingerprints(const NativeOp& op) {
  const char* call = "ncclAllGather of the ranks' fingerprints";
  if (exchange_ == Exchange::idle) return true;
  if (exchange_ == Exchange::issued) {
    ncclResult_t state = fp_comm_.async_state();
    if (state == ncclInProgress) return false;
    if (state != ncclSuccess) fail_async(state, call, op);
    // NCCL has issued the gather: the copy to the host and the event go behind it.
    check_cuda_status(
        cudaMemcpyAsync(fp_host_.data(), fp_device_.data(), static_cast<size_t>(size_) * kFpBytes,
                        cudaMemcpyDeviceToHost, fp_stream_.get()),
        where(op) + ": copying the ranks' fingerprints to the host");
    fp_done_.record(fp_stream_);
    exchange_ = Exchange::copying;
  }
  bool finished = false;
  try {
    finished = fp_done_.query(where(op) + " (" + call + ") on the GPU");
  } catch (const Error& e) {
    fail(e.code(), e.what());
  }
  if (!finished) return false;
  exchange_ = Exchange::idle;
  std::memcpy(fingerprints_.data(), fp_host_.data(), static_cast<size_t>(size_) * kFpBytes);
  std::string why = describe_disagreement(rank_, "nccl", fingerprints_.data(), size_);
  if (!why.empty()) fail(ErrorCode::InvalidArgument, why);
  return true;
}

template <typename Issue, typename After>
void NativeNcclBackend::run(const NativeOp& op, const char* call, Issue issue, After after) {
  check_usable(op);
  CudaDeviceGuard on(device_);
  ncclResult_t result = issue();
  if (result != ncclSuccess && result != ncclInProgress) {
    std::string detail = ncclGetLastError(comm_.get());
    fail(result == ncclInvalidArgument || result == ncclInvalidUsage ? ErrorCode::InvalidArgument
                                                                     : ErrorCode::Internal,
         where(op) + ": " + call + " failed: " + ncclGetErrorString(result) +
             (detail.empty() ? "" : " (" + detail + ")"));
  }
  bool recorded = false, finished = false;  // recorded: NCCL issued the op, the event is behind
  for (;;) {
    ncclResult_t state = comm_.async_state();
    if (state != ncclSuccess && state != ncclInProgress) fail_async(state, call, op);
    if (!recorded && state == ncclSuccess) {
      after();
      done_.record(stream_);
      recorded = true;
    }
    if (recorded && !finished) {
      try {
        finished = done_.query(where(op) + " (" + call + ") on the GPU");
      } catch (const Error& e) {
        fail(e.code(), e.what());
      }
    }
    // The op's fingerprint exchange, when one was posted with it, decides before the op may
    // return: a disagreement fails here even while the mismatched op hangs.
    if (poll_fingerprints(op) && finished) {
      backoff_.progressed();
      return;
    }
    stop_if_interrupted(op, call);
    backoff_.idle(op.deadline);
  }
}

void NativeNcclBackend::check_agreement(const NativeOp& op) {
  post_fingerprints(op);
  for (; !poll_fingerprints(op); backoff_.idle(op.deadline))
    stop_if_interrupted(op, "ncclAllGather of the ranks' fingerprints");
  backoff_.progressed();
}

void NativeNcclBackend::allreduce(const void* in, void* out, size_t count, DType dtype,
                                  ReduceOp reduce, const NativeOp& op) {
  if (count == 0) return check_agreement(op);  // nothing moves, but the ranks must agree
  check_device_memory(in, "input", op);
  check_device_memory(out, "output", op);
  post_fingerprints(op);
  run(
      op, "ncclAllReduce",
      [&] {
        return ncclAllReduce(in, out, count, nccl_datatype(dtype), nccl_op(dtype, reduce),
                             comm_.get(), stream_.get());
      },
      [&] { scale_down_if_needed(out, count, dtype, reduce); });
}

void NativeNcclBackend::broadcast(void* data, size_t count, DType dtype, int root,
                                  const NativeOp& op) {
  if (count == 0) return check_agreement(op);
  check_device_memory(data, "data", op);
  post_fingerprints(op);
  run(op, "ncclBroadcast", [&] {
    return ncclBroadcast(data, data, count, nccl_datatype(dtype), root, comm_.get(),
                         stream_.get());
  });
}

void NativeNcclBackend::reduce(const void* in, void* out, size_t count, DType dtype,
                               ReduceOp reduce, int root, const NativeOp& op) {
  if (count == 0) return check_agreement(op);
  bool is_root = rank_ == root;
  check_device_memory(in, "input", op);
  if (is_root) check_device_memory(out, "output", op);
  post_fingerprints(op);
  run(
      op, "ncclReduce",
      [&] {
        return ncclReduce(in, is_root ? out : nullptr, count, nccl_datatype(dtype),
                          nccl_op(dtype, reduce), root, comm_.get(), stream_.get());
      },
      [&] {
        if (is_root) scale_down_if_needed(out, count, dtype, reduce);
      });
}

void NativeNcclBackend::allgather(const void* in, void* out, size_t count, DType dtype,
                                  const NativeOp& op) {
  if (count == 0) return check_agreement(op);
  check_device_memory(in, "input", op);
  check_device_memory(out, "output", op);
  // NCCL takes `in` == this rank's block of `out` as in place, which is weft's in-place form.
  post_fingerprints(op);
  run(op, "ncclAllGather", [&] {
    return ncclAllGather(in, out, count, nccl_datatype(dtype), comm_.get(), stream_.get());
  });
}

void NativeNcclBackend::reduce_scatter(const void* in, void* out, size_t count, DType dtype,
                                       ReduceOp reduce, const NativeOp& op) {
  if (count == 0) return check_agreement(op);
  check_device_memory(in, "input", op);
  check_device_memory(out, "output", op);
  size_t block = count * dtype_size(dtype);
  auto first = static_cast<const char*>(in), last = first + block * static_cast<size_t>(size_);
  auto o = static_cast<const char*>(out);
  bool overlaps = o < last && first < o + block;
  if (overlaps && o != first + block * static_cast<size_t>(rank_))
    throw Error(ErrorCode::InvalidArgument,
                where(op) + ": the output overlaps the input other than as this rank's block "
                            "(NCCL's in-place form); use separate buffers");
  post_fingerprints(op);
  run(
      op, "ncclReduceScatter",
      [&] {
        return ncclReduceScatter(in, out, count, nccl_datatype(dtype), nccl_op(dtype, reduce),
                                 comm_.get(), stream_.get());
      },
      [&] { scale_down_if_needed(out, count, dtype, reduce); });
}

void NativeNcclBackend::alltoall(const void* in, void* out, size_t count, DType dtype,
                                 const NativeOp& op) {
  if (count == 0) return check_agreement(op);
  check_device_memory(in, "input", op);
  check_device_memory(out, "output", op);
  size_t block = count * dtype_size(dtype);
  auto src = static_cast<const char*>(in);
  auto dst = static_cast<char*>(out);
  // Agreed first, not alongside: the blocks go as NCCL send/receive pairs, and NCCL does not
  // promise that a receive smaller than its send stays within its buffer.
  check_agreement(op);
  run(op, "grouped ncclSend/ncclRecv (alltoall)", [&] {
    // One group: NCCL schedules every pair at once, so no send waits behind another.
    // Nothing may throw between ncclGroupStart and ncclGroupEnd: an open group would swallow
    // this thread's later NCCL calls. A failed copy is reported after the group is closed.
    cudaError_t copied = cudaSuccess;
    ncclResult_t result = ncclGroupStart();
    for (int peer = 0; peer < size_ && (result == ncclSuccess || result == ncclInProgress);
         peer++) {
      size_t at = block * static_cast<size_t>(peer);
      if (peer == rank_) {
        copied = cudaMemcpyAsync(dst + at, src + at, block, cudaMemcpyDeviceToDevice,
                                 stream_.get());
        continue;
      }
      result = ncclSend(src + at, block, ncclUint8, peer, comm_.get(), stream_.get());
      if (result == ncclSuccess || result == ncclInProgress)
        result = ncclRecv(dst + at, block, ncclUint8, peer, comm_.get(), stream_.get());
    }
    ncclResult_t ended = ncclGroupEnd();
    check_cuda_status(copied, where(op) + ": copying this rank's own block");
    return result == ncclSuccess || result == ncclInProgress ? ended : result;
  });
}

void NativeNcclBackend::send(const void* data, size_t bytes, int peer, const NativeOp& op) {
  check_usable(op);
  if (bytes) check_device_memory(data, "send", op);
  auto* header = static_cast<FrameHeader*>(header_host_.data());
  *header = data_header(op.fp, bytes);
  run(op, "ncclSend of the frame header", [&] {
    check_cuda_status(cudaMemcpyAsync(header_device_.data(), header, sizeof(FrameHeader),
                                      cudaMemcpyHostToDevice, stream_.get()),
                      where(op) + ": copying the frame header to the GPU");
    return ncclSend(header_device_.data(), sizeof(FrameHeader), ncclUint8, peer, comm_.get(),
                    stream_.get());
  });
  if (bytes == 0) return;
  run(op, "ncclSend", [&] {
    return ncclSend(data, bytes, ncclUint8, peer, comm_.get(), stream_.get());
  });
}

void NativeNcclBackend::recv(void* data, size_t bytes, int peer, const NativeOp& op) {
  check_usable(op);
  if (bytes) check_device_memory(data, "receive", op);
  auto* header = static_cast<FrameHeader*>(header_host_.data());
  run(
      op, "ncclRecv of the frame header",
      [&] {
        return ncclRecv(header_device_.data(), sizeof(FrameHeader), ncclUint8, peer,
                        comm_.get(), stream_.get());
      },
      [&] {
        check_cuda_status(cudaMemcpyAsync(header, header_device_.data(), sizeof(FrameHeader),
                                          cudaMemcpyDeviceToHost, stream_.get()),
                          where(op) + ": copying the frame header to the host");
      });
  try {
    check_frame(*header, op.fp, bytes, rank_, peer, "nccl");
  } catch (const Error& e) {
    // The peer's payload is not what this rank expects: receiving it could overrun the buffer.
    fail(e.code(), std::string("rank ") + std::to_string(rank_) + ": " + e.what());
  }
  if (bytes == 0) return;
  run(op, "ncclRecv", [&] {
    return ncclRecv(data, bytes, ncclUint8, peer, comm_.get(), stream_.get());
  });
}

void NativeNcclBackend::batch_p2p(std::span<const NativeMessage> messages, const NativeOp& op) {
  check_usable(op);
  for (const NativeMessage& m : messages)
    if (m.bytes) check_device_memory(m.data, m.is_send ? "send" : "receive", op);
  const size_t header_bytes = messages.size() * sizeof(FrameHeader);
  if (batch_headers_host_.size() < header_bytes) {
    batch_headers_host_ = PinnedBuffer(header_bytes, device_);
    batch_headers_device_ = CudaBuffer(header_bytes, device_);
  }
  auto* host = static_cast<FrameHeader*>(batch_headers_host_.data());
  auto* device = static_cast<FrameHeader*>(batch_headers_device_.data());
  for (size_t i = 0; i < messages.size(); i++)
    if (messages[i].is_send) host[i] = data_header(messages[i].fp, messages[i].bytes);
  auto ok = [](ncclResult_t r) { return r == ncclSuccess || r == ncclInProgress; };
  // Every message (its header, then its payload) as one group: NCCL schedules the group's pairs
  // at once, so no send waits for a receive posted behind it. Nothing may throw between
  // ncclGroupStart and ncclGroupEnd (see alltoall). Messages to one peer keep their order.
  auto group = [&](bool headers) {
    ncclResult_t result = ncclGroupStart();
    for (size_t i = 0; i < messages.size() && ok(result); i++) {
      const NativeMessage& m = messages[i];
      void* data = headers ? static_cast<void*>(device + i) : m.data;
      size_t bytes = headers ? sizeof(FrameHeader) : m.bytes;
      if (bytes == 0) continue;
      result = m.is_send ? ncclSend(data, bytes, ncclUint8, m.peer, comm_.get(), stream_.get())
                         : ncclRecv(data, bytes, ncclUint8, m.peer, comm_.get(), stream_.get());
    }
    ncclResult_t ended = ncclGroupEnd();
    return ok(result) ? ended : result;
  };
  run(
      op, "grouped ncclSend/ncclRecv of the frame headers",
      [&] {
        check_cuda_status(cudaMemcpyAsync(device, host, header_bytes, cudaMemcpyHostToDevice,
                                          stream_.get()),
                          where(op) + ": copying the frame headers to the GPU");
        return group(true);
      },
      [&] {
        check_cuda_status(cudaMemcpyAsync(host, device, header_bytes, cudaMemcpyDeviceToHost,
                                          stream_.get()),
                          where(op) + ": copying the frame headers to the host");
      });
  for (size_t i = 0; i < messages.size(); i++) {
    if (messages[i].is_send) continue;
    try {
      check_frame(host[i], messages[i].fp, messages[i].bytes, rank_, messages[i].peer, "nccl");
    } catch (const Error& e) {
      // As in recv(): a payload this rank does not expect could overrun its buffer.
      fail(e.code(), std::string("rank ") + std::to_string(rank_) + ": " + e.what());
    }
  }
  run(op, "grouped ncclSend/ncclRecv", [&] { return group(false); });
}

std::unique_ptr<NativeBackend> NativeNcclBackend::split(int color, int key, Deadline deadline) {
  std::string where = "rank " + std::to_string(rank_) + ": split(" + std::to_string(color) +
                      ", " + std::to_string(key) + ") over nccl";
  if (aborted_.load()) {
    std::lock_guard lock(abort_mu_);
    throw Error(ErrorCode::Aborted, where + " after the communicator failed: " + abort_reason_);
  }
  int index = splits_++;
  NcclComm child = comm_.split(color, key, deadline, where);
  if (!child) return nullptr;
  // The child's abort notices go under its own prefix, so the groups do not hear each other.
  auto store = store_ ? std::make_shared<PrefixStore>(
                            "s" + std::to_string(index) + "c" + std::to_string(color), store_)
                      : nullptr;
  return std::make_unique<NativeNcclBackend>(std::move(child), std::move(store), deadline);
}

}  // namespace

int nccl_visible_gpus() { return cuda_device_count(); }

std::unique_ptr<NativeBackend> make_native_nccl_backend(const World& world,
                                                        std::shared_ptr<Store> store, int device,
                                                        Deadline deadline) {
  std::string where = "rank " + std::to_string(world.rank) + ": backend nccl";
  require_cuda_device(device, where);
  if (!store)
    throw Error(ErrorCode::InvalidArgument,
                where + " needs a rendezvous store to share NCCL's unique id: launch with "
                        "weftrun, set WEFT_STORE_ADDR, or MASTER_ADDR and MASTER_PORT");
  NcclComm comm =
      NcclComm::connect(*store, "nccl/unique_id", world.rank, world.size, device, deadline);
  return std::make_unique<NativeNcclBackend>(std::move(comm), std::move(store), deadline);
}

}  // namespace weft::comm
