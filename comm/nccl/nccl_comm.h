#pragma once
// NcclComm: one NCCL communicator, owned (move-only), in NCCL's non-blocking mode, plus the
// translations every NCCL user in weft shares (dtypes, reduce ops, NCCL status -> weft::Error).
//
// Why non-blocking (ncclConfig_t::blocking = 0): a blocking communicator can stall inside
// ncclCommInitRank, ncclGroupEnd or a collective's launch while it waits for a peer that never
// comes, and no deadline can interrupt it. Non-blocking, every call returns at once
// (ncclInProgress while NCCL still works in the background) and wait_issued() polls
// ncclCommGetAsyncError, sleeping between polls, until it is done, the deadline passes or a
// peer's failure shows up there.
//
// Threading: an NcclComm is used by one thread at a time (the backend's or transport's op
// thread). ncclCommAbort frees the communicator, so it is only ever called on that thread;
// other threads ask for an abort through a flag the op thread polls (see wait_issued).
#include <nccl.h>

#include <string>

#include "comm/rendezvous/store.h"
#include "runtime/clock.h"
#include "runtime/dtype.h"

namespace weft::comm {

// NCCL's name for each weft dtype (all seven have one).
ncclDataType_t nccl_datatype(DType dtype);
// NCCL's reduce op; avg is ncclAvg (callers that want weft's integer avg use sum, see
// native_nccl.cc).
ncclRedOp_t nccl_reduce_op(ReduceOp op);
// Throws weft::Error for `result` of `call` when it is neither ncclSuccess nor ncclInProgress:
// `where` names the rank and the op ("rank 3: allreduce #7 (f32 x 1000, sum) over nccl").
void check_nccl(ncclResult_t result, const char* call, const std::string& where);

class NcclComm {
 public:
  NcclComm() = default;
  // Collective over the `size` ranks that share `store` (scoped to this group): rank 0 makes
  // the ncclUniqueId and publishes it under `key`, the others wait for it until `deadline`,
  // then every rank builds its communicator on cuda:`device`. Throws Unavailable without that
  // device, Timeout naming the missing rank-0 key or NCCL's unfinished set-up at the deadline.
  static NcclComm connect(Store& store, const std::string& key, int rank, int size, int device,
                          Deadline deadline);
  ~NcclComm();  // finalizes (bounded wait) then destroys; aborts if the comm has failed
  NcclComm(NcclComm&& other) noexcept;
  NcclComm& operator=(NcclComm&& other) noexcept;
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  explicit operator bool() const { return comm_ != nullptr; }
  ncclComm_t get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }

  // Collective over this communicator (ncclCommSplit): ranks passing the same color form a new
  // non-blocking communicator, ordered by (key, rank). Returns an empty NcclComm for a
  // negative color. `where` names the split for messages.
  NcclComm split(int color, int key, Deadline deadline, const std::string& where);

  // NCCL's state: ncclSuccess, ncclInProgress (a call still being carried out in the
  // background) or the error that broke the communicator (ncclRemoteError: a peer failed).
  ncclResult_t async_state() const;

  // Waits until every call issued so far has left ncclInProgress, sleeping between polls: for
  // set-up (init, split), which nothing else can be waiting on. Throws, after aborting the
  // communicator, Timeout at `deadline` or the mapped NCCL error; `where` names rank and step.
  void wait_issued(Deadline deadline, const std::string& where);

  // The error that broke the communicator, as weft::Error (PeerLost for ncclRemoteError), with
  // NCCL's last message. Aborts the communicator first.
  [[noreturn]] void fail(ncclResult_t state, const std::string& where);

  // ncclCommAbort: ends NCCL's kernels and network activity on this communicator and frees it.
  // Idempotent; never throws. Only on the thread that uses the communicator.
  void abort() noexcept;

 private:
  NcclComm(ncclComm_t comm, int rank, int size, int device)
      : comm_(comm), rank_(rank), size_(size), device_(device) {}
  void release() noexcept;  // finalize + destroy, or abort when that fails

  ncclComm_t comm_ = nullptr;
  int rank_ = 0, size_ = 0, device_ = -1;
};

}  // namespace weft::comm
