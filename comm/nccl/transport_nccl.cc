// nccl transport: weft's non-blocking verbs on ncclSend/ncclRecv, so weft's own ring, doubling,
// chain and pairwise algorithms run over NCCL's links (backend nccl-ring: "ring all-reduce
// over NCCL" taken literally). Native NCCL (native_nccl.cc) is the fast path; this one exists
// to run and measure weft's algorithms on GPUs.
//
// Batches: isend/irecv only record the request. The next test() or wait_for_progress()
// launches everything posted since, as one ncclGroupStart/ncclGroupEnd: NCCL then schedules a
// step's send and receive together. Issued one by one on one stream, a ring step's send would
// wait for the peer's receive, queued behind the peer's own send: a deadlock around the ring.
// One batch is in flight at a time; its requests complete together.
//
// Each batch moves in two phases: first every message's 48-byte FrameHeader, then, once the
// received headers have been checked on the host, the payloads. NCCL does not check that a
// send and its receive agree on size, so a mismatch (ranks calling different collectives)
// must be caught before any payload moves, and fails with InvalidArgument naming both sides.
// The price is a second launch and a device-to-host round trip per batch.
//
// Memory: device pointers on this rank's GPU move directly. Host pointers (the communicator's
// host scratch, a split's color exchange, a cpu tensor) are staged through a device buffer
// per request slot, kept across reuses; NCCL cannot read host memory.
//
// Self messages (peer == rank) are allowed: NCCL pairs them inside one group. They let a
// one-GPU machine exercise the whole path.
//
// Completion and failure: a phase ends when its CUDA event does (cudaEventQuery, polled with
// IdleBackoff's sleeps). NCCL's async error (a peer lost: ncclRemoteError), abort() from any
// thread, the peers' abort notices (StoreAbortChannel) and the deadlines of the callers' waits
// are checked while polling; any of them calls ncclCommAbort, fails every request with the
// batch's messages named, and leaves the transport failed (later requests fail with Aborted).
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "comm/nccl/backends.h"
#include "runtime/idle_backoff.h"  // IdleBackoff
#include "comm/nccl/nccl_comm.h"
#include "comm/rendezvous/store_abort_channel.h"
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/cuda_buffer.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_stream.h"
#include "runtime/error.h"
#include "runtime/pinned_buffer.h"

namespace weft::comm {
namespace {

constexpr size_t kMinStagingBytes = 64 << 10;  // staging buffers grow at least this much

class NcclTransport final : public Transport {
 public:
  NcclTransport(NcclComm comm, std::shared_ptr<Store> store);
  ~NcclTransport() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "nccl"; }
  bool moves_device_memory() const override { return true; }
  Request isend(int peer, const void* data, size_t bytes, const Fingerprint& fp) override;
  Request irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) override;
  bool test(Request r) override;
  void wait_for_progress(const LazyDeadline& until) override;
  void abort(const std::string& reason) override;

 private:
  enum class State : uint8_t { free, posted, in_batch, done, failed };
  struct Req {
    uint32_t generation = 0;
    State state = State::free;
    bool is_send = false;
    bool staged = false;  // host memory, moved through `staging`
    int peer = 0;
    char* data = nullptr;
    size_t bytes = 0;
    Fingerprint fp;
    PinnedBuffer header_host;  // FrameHeader: what this rank sends, or what arrived
    CudaBuffer header_device;
    CudaBuffer staging;
    // A staged receive lands here first: a device-to-host copy into pageable memory would block
    // the progress thread behind NCCL's receive, out of reach of the deadline and abort().
    PinnedBuffer landing;
    ErrorCode code = ErrorCode::Internal;
    std::string error;
  };
  // The batch in flight: which phase, and whether NCCL has issued it yet.
  enum class Phase : uint8_t { idle, headers, payloads };

  Request post(bool is_send, int peer, char* data, size_t bytes, const Fingerprint& fp);
  uint32_t slot_of(Request r) const;
  std::string where(const Req& r) const;
  // Launches and advances the batch without blocking; true when a batch finished or failed.
  bool progress();
  void launch_headers();
  void launch_payloads();
  // Ends the batch: every request in it done.
  void finish_batch();
  // Fails the batch's and the posted requests, aborts NCCL, tells the peers.
  void fail_all(ErrorCode code, const std::string& message);
  bool is_device_memory(const void* p) const;
  std::string batch_description() const;

  NcclComm comm_;
  const int rank_, size_, device_;
  CudaStream stream_;
  CudaEvent phase_done_;
  StoreAbortChannel channel_;
  std::deque<Req> slots_;  // never moves its elements: NCCL writes into their buffers
  std::vector<uint32_t> free_;
  std::vector<uint32_t> posted_;  // waiting for the next batch
  std::vector<uint32_t> batch_;   // in flight
  Phase phase_ = Phase::idle;
  bool issued_ = false;  // NCCL has issued the current phase; the event stands behind it
  uint64_t completions_ = 0, seen_completions_ = 0;
  IdleBackoff backoff_;

  std::atomic<bool> aborted_{false};
  std::mutex abort_mu_;
  std::string abort_reason_;
  bool failed_ = false;  // the op thread has applied the abort
};

NcclTransport::NcclTransport(NcclComm comm, std::shared_ptr<Store> store)
    : comm_(std::move(comm)),
      rank_(comm_.rank()),
      size_(comm_.size()),
      device_(comm_.device()),
      stream_(device_),
      phase_done_(device_),
      channel_(std::move(store), rank_) {}

NcclTransport::~NcclTransport() {
  // A batch still in flight belongs to an op that failed or was abandoned: NCCL may still
  // write into the slots, so end it first. Otherwise the stream is idle.
  if (phase_ != Phase::idle || aborted_.load()) comm_.abort();
}

bool NcclTransport::is_device_memory(const void* p) const {
  CudaDeviceGuard on(device_);  // a query on an unset thread would open a context on GPU 0
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return (attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged) &&
         attributes.device == device_;
}

std::string NcclTransport::where(const Req& r) const {
  return "rank " + std::to_string(rank_) + (r.is_send ? " sending " : " receiving ") +
         r.fp.describe() + (r.is_send ? " to rank " : " from rank ") + std::to_string(r.peer) +
         " over nccl";
}

Transport::Request NcclTransport::isend(int peer, const void* data, size_t bytes,
                                        const Fingerprint& fp) {
  return post(true, peer, static_cast<char*>(const_cast<void*>(data)), bytes, fp);
}

Transport::Request NcclTransport::irecv(int peer, void* data, size_t bytes,
                                        const Fingerprint& fp) {
  return post(false, peer, static_cast<char*>(data), bytes, fp);
}

Transport::Request NcclTransport::post(bool is_send, int peer, char* data, size_t bytes,
                                       const Fingerprint& fp) {
  if (peer < 0 || peer >= size_)
    throw Error(ErrorCode::InvalidArgument,
                "nccl: rank " + std::to_string(rank_) + " cannot " +
                    (is_send ? "send to" : "receive from") + " rank " + std::to_string(peer) +
                    " in " + fp.describe() + " (group of " + std::to_string(size_) + ")");
  if (free_.empty()) {
    CudaDeviceGuard on(device_);
    Req& fresh = slots_.emplace_back();
    fresh.header_host = PinnedBuffer(sizeof(FrameHeader), device_);
    fresh.header_device = CudaBuffer(sizeof(FrameHeader), device_);
    free_.push_back(static_cast<uint32_t>(slots_.size() - 1));
  }
  uint32_t slot = free_.back();
  free_.pop_back();
  Req& r = slots_[slot];
  r.state = State::posted;
  r.is_send = is_send;
  r.peer = peer;
  r.data = data;
  r.bytes = bytes;
  r.fp = fp;
  r.error.clear();
  r.staged = bytes > 0 && !is_device_memory(data);
  if (r.staged && r.staging.size() < bytes)
    r.staging = CudaBuffer(std::max(bytes, kMinStagingBytes), device_);
  if (r.staged && !is_send && r.landing.size() < bytes)
    r.landing = PinnedBuffer(std::max(bytes, kMinStagingBytes), device_);
  if (aborted_.load()) {
    std::lock_guard lock(abort_mu_);
    r.state = State::failed;
    r.code = ErrorCode::Aborted;
    r.error = where(r) + " posted after the transport failed: " + abort_reason_;
    completions_++;
  } else {
    posted_.push_back(slot);
  }
  return (uint64_t{r.generation} << 32) | slot;
}

uint32_t NcclTransport::slot_of(Request id) const {
  auto slot = static_cast<uint32_t>(id);
  if (slot >= slots_.size() || slots_[slot].generation != (id >> 32) ||
      slots_[slot].state == State::free)
    throw Error(ErrorCode::InvalidArgument, "nccl: rank " + std::to_string(rank_) +
                                                " tested an unknown or already retired request");
  return slot;
}

std::string NcclTransport::batch_description() const {
  std::string s;
  for (size_t i = 0; i < batch_.size() && i < 4; i++) {
    const Req& r = slots_[batch_[i]];
    s += (i ? "; " : "") + std::string(r.is_send ? "send " : "recv ") + r.fp.describe() +
         (r.is_send ? " to rank " : " from rank ") + std::to_string(r.peer) + ", " +
         std::to_string(r.bytes) + " bytes";
  }
  if (batch_.size() > 4) s += "; ...";
  return s;
}

void NcclTransport::launch_headers() {
  batch_.swap(posted_);
  posted_.clear();
  CudaDeviceGuard on(device_);
  cudaStream_t s = stream_.get();
  for (uint32_t slot : batch_) {
    Req& r = slots_[slot];
    r.state = State::in_batch;
    if (!r.is_send) continue;
    *static_cast<FrameHeader*>(r.header_host.data()) = data_header(r.fp, r.bytes);
    check_cuda_status(cudaMemcpyAsync(r.header_device.data(), r.header_host.data(),
                                      sizeof(FrameHeader), cudaMemcpyHostToDevice, s),
                      where(r) + ": copying its frame header to the GPU");
    if (r.staged)
      check_cuda_status(
          cudaMemcpyAsync(r.staging.data(), r.data, r.bytes, cudaMemcpyHostToDevice, s),
          where(r) + ": staging host memory on the GPU");
  }
  ncclResult_t result = ncclGroupStart();
  for (uint32_t slot : batch_) {
    Req& r = slots_[slot];
    if (result != ncclSuccess && result != ncclInProgress) break;
    result = r.is_send ? ncclSend(r.header_device.data(), sizeof(FrameHeader), ncclUint8, r.peer,
                                  comm_.get(), s)
                       : ncclRecv(r.header_device.data(), sizeof(FrameHeader), ncclUint8, r.peer,
                                  comm_.get(), s);
  }
  ncclResult_t ended = ncclGroupEnd();
  if (result == ncclSuccess || result == ncclInProgress) result = ended;
  phase_ = Phase::headers;
  issued_ = false;
  if (result != ncclSuccess && result != ncclInProgress)
    fail_all(ErrorCode::Internal, "rank " + std::to_string(rank_) +
                                      ": launching frame headers over nccl failed: " +
                                      ncclGetErrorString(result) + " (" + batch_description() +
                                      ")");
}

void NcclTransport::launch_payloads() {
  CudaDeviceGuard on(device_);
  cudaStream_t s = stream_.get();
  bool any = false;
  ncclResult_t result = ncclGroupStart();
  for (uint32_t slot : batch_) {
    Req& r = slots_[slot];
    if (r.bytes == 0) continue;
    if (result != ncclSuccess && result != ncclInProgress) break;
    void* buffer = r.staged ? r.staging.data() : r.data;
    result = r.is_send ? ncclSend(buffer, r.bytes, ncclUint8, r.peer, comm_.get(), s)
                       : ncclRecv(buffer, r.bytes, ncclUint8, r.peer, comm_.get(), s);
    any = true;
  }
  ncclResult_t ended = ncclGroupEnd();
  if (result == ncclSuccess || result == ncclInProgress) result = ended;
  phase_ = Phase::payloads;
  issued_ = false;
  if (!any) issued_ = true, phase_done_.record(stream_);
  if (result != ncclSuccess && result != ncclInProgress)
    fail_all(ErrorCode::Internal, "rank " + std::to_string(rank_) +
                                      ": launching payloads over nccl failed: " +
                                      ncclGetErrorString(result) + " (" + batch_description() +
                                      ")");
}

void NcclTransport::finish_batch() {
  for (uint32_t slot : batch_) {
    Req& r = slots_[slot];
    if (!r.is_send && r.staged) std::memcpy(r.data, r.landing.data(), r.bytes);
    r.state = State::done;
    completions_++;
  }
  batch_.clear();
  phase_ = Phase::idle;
}

bool NcclTransport::progress() {
  if (failed_) return false;
  if (aborted_.load()) {
    std::string reason;
    {
      std::lock_guard lock(abort_mu_);
      reason = abort_reason_;
    }
    fail_all(ErrorCode::Aborted, "rank " + std::to_string(rank_) + ": nccl transport aborted" +
                                     (batch_.empty() ? "" : " with in flight: " + batch_description()) +
                                     ": " + reason);
    return true;
  }
  if (phase_ == Phase::idle) {
    if (posted_.empty()) return false;
    launch_headers();
    if (failed_) return true;
  }
  ncclResult_t state = comm_.async_state();
  if (state != ncclSuccess && state != ncclInProgress) {
    std::string detail = ncclGetLastError(comm_.get());
    fail_all(state == ncclRemoteError ? ErrorCode::PeerLost : ErrorCode::Internal,
             "rank " + std::to_string(rank_) + ": nccl failed with in flight: " +
                 batch_description() + ": " + ncclGetErrorString(state) +
                 (detail.empty() ? "" : " (" + detail + ")") +
                 (state == ncclRemoteError ? "; a peer rank failed or its connection broke"
                                           : ""));
    return true;
  }
  if (!issued_) {
    if (state == ncclInProgress) return false;
    CudaDeviceGuard on(device_);
    if (phase_ == Phase::headers) {
      for (uint32_t slot : batch_) {
        Req& r = slots_[slot];
        if (!r.is_send)
          check_cuda_status(cudaMemcpyAsync(r.header_host.data(), r.header_device.data(),
                                            sizeof(FrameHeader), cudaMemcpyDeviceToHost,
                                            stream_.get()),
                            where(r) + ": copying its frame header to the host");
      }
    } else {
      for (uint32_t slot : batch_) {
        Req& r = slots_[slot];
        if (!r.is_send && r.staged)
          check_cuda_status(cudaMemcpyAsync(r.landing.data(), r.staging.data(), r.bytes,
                                            cudaMemcpyDeviceToHost, stream_.get()),
                            where(r) + ": copying staged data back to host memory");
      }
    }
    phase_done_.record(stream_);
    issued_ = true;
  }
  bool finished = false;
  try {
    finished = phase_done_.query("rank " + std::to_string(rank_) + ": nccl transport (" +
                                 batch_description() + ") on the GPU");
  } catch (const Error& e) {
    fail_all(e.code(), e.what());
    return true;
  }
  if (!finished) return false;
  if (phase_ == Phase::headers) {
    for (uint32_t slot : batch_) {
      Req& r = slots_[slot];
      if (r.is_send) continue;
      try {
        check_frame(*static_cast<FrameHeader*>(r.header_host.data()), r.fp, r.bytes, rank_,
                    r.peer, "nccl");
      } catch (const Error& e) {
        // The payload on its way is not what this rank posted: receiving it could overrun.
        fail_all(e.code(), "rank " + std::to_string(rank_) + ": " + e.what());
        return true;
      }
    }
    launch_payloads();
    return failed_;
  }
  finish_batch();
  return true;
}

void NcclTransport::fail_all(ErrorCode code, const std::string& message) {
  {
    std::lock_guard lock(abort_mu_);
    if (!aborted_.load()) {
      abort_reason_ = message;
      aborted_.store(true);
    }
  }
  failed_ = true;
  comm_.abort();  // ends NCCL's kernels: nothing writes into the requests' buffers afterwards
  channel_.notify_peers(message);
  for (auto* list : {&batch_, &posted_}) {
    for (uint32_t slot : *list) {
      Req& r = slots_[slot];
      r.state = State::failed;
      r.code = code;
      r.error = message;
      completions_++;
    }
    list->clear();
  }
  phase_ = Phase::idle;
}

bool NcclTransport::test(Request id) {
  uint32_t slot = slot_of(id);
  if (slots_[slot].state == State::posted || slots_[slot].state == State::in_batch) {
    if (progress()) backoff_.progressed();
  }
  if (!failed_ && (slots_[slot].state == State::posted || slots_[slot].state == State::in_batch)) {
    if (std::string notice = channel_.poll(); !notice.empty())
      fail_all(ErrorCode::Aborted, "rank " + std::to_string(rank_) + ": " + notice);
  }
  Req& r = slots_[slot];
  if (r.state == State::posted || r.state == State::in_batch) return false;
  bool ok = r.state == State::done;
  ErrorCode code = r.code;
  std::string error = std::move(r.error);
  r.state = State::free;
  r.generation++;
  free_.push_back(slot);
  if (!ok) throw Error(code, error);
  return true;
}

void NcclTransport::wait_for_progress(const LazyDeadline& until) {
  if (completions_ != seen_completions_ || aborted_.load()) {
    seen_completions_ = completions_;
    return;
  }
  for (;;) {
    if (progress() || completions_ != seen_completions_) {
      backoff_.progressed();
      seen_completions_ = completions_;
      return;
    }
    if (failed_ || (phase_ == Phase::idle && posted_.empty())) return;
    if (std::string notice = channel_.poll(); !notice.empty()) {
      fail_all(ErrorCode::Aborted, "rank " + std::to_string(rank_) + ": " + notice);
      return;
    }
    if (Clock::now() >= until.get()) {
      // The caller's wait is about to time out (its message names the peer); NCCL cannot be
      // left running into buffers the caller will reuse, so the communicator goes now.
      fail_all(ErrorCode::Timeout,
               "rank " + std::to_string(rank_) + ": nccl transport timed out with in flight: " +
                   batch_description() +
                   "; the peer is stuck, slower, dead or calling a different collective");
      return;
    }
    backoff_.idle(until.get());
  }
}

void NcclTransport::abort(const std::string& reason) {
  // Any thread: only flags it; the verb thread aborts NCCL at its next look (nccl_comm.h).
  {
    std::lock_guard lock(abort_mu_);
    if (aborted_.load()) return;
    abort_reason_ = reason;
    aborted_.store(true);
  }
  channel_.notify_peers(reason);
}

}  // namespace

std::unique_ptr<Transport> make_nccl_transport(const TransportSetup& setup, int cuda_device) {
  std::string where = "rank " + std::to_string(setup.rank) + ": backend nccl-ring";
  require_cuda_device(cuda_device, where);
  if (!setup.store)
    throw Error(ErrorCode::InvalidArgument,
                where + " needs a rendezvous store to share NCCL's unique id: launch with "
                        "weftrun, set WEFT_STORE_ADDR, or MASTER_ADDR and MASTER_PORT");
  // The abort channel keeps the group's store (setup.store may not outlive set-up), so a rank
  // that fails tells its peers at once instead of leaving them to their deadline.
  NcclComm comm = NcclComm::connect(*setup.store, "nccl/unique_id", setup.rank, setup.size,
                                    cuda_device, setup.deadline);
  return std::make_unique<NcclTransport>(std::move(comm), setup.shared_store);
}

}  // namespace weft::comm
