#pragma once
// NativeBackend: collectives done by a vendor library's own algorithms (MPI_Allreduce,
// ncclAllReduce, ...) instead of weft's algorithms over a Transport. A Communicator holds either
// a Transport or a NativeBackend; everything above it (Work, the executor, argument checks,
// sequence numbers) is the same for both.
//
// Contract every implementation keeps:
//  - Ops are called one at a time per backend, in the communicator's order, on its executor
//    thread (or the caller's, when it runs an op inline). abort() may come from any thread.
//  - Each op runs to completion or throws weft::Error: Timeout at `op.deadline` naming the op,
//    Aborted after abort() or a peer's abort, InvalidArgument for a mismatch. Idle waiting
//    sleeps. A library that cannot cancel an op leaves the backend unusable after a failure:
//    later ops fail with Aborted.
//  - Buffers are host or device memory as the library supports; `count` is in elements.
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "comm/fingerprint.h"
#include "runtime/clock.h"
#include "runtime/dtype.h"
#include "runtime/error.h"

namespace weft {
struct World;
}

namespace weft::comm {

class Store;

struct NativeOp {
  Fingerprint fp;     // what the op is, for messages and for check_agreement
  Deadline deadline;  // the op must finish by then
};

// One message of batch_p2p: its own send or recv fingerprint (per-peer sequence number), as a
// lone send() or recv() would carry.
struct NativeMessage {
  bool is_send;
  void* data;  // read when sending, written when receiving
  size_t bytes;
  int peer;
  Fingerprint fp;
};

class NativeBackend {
 public:
  virtual ~NativeBackend() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "mpi", "nccl": for messages
  // Whether its buffers are device memory (NCCL: CUDA tensors only) rather than host memory.
  virtual bool moves_device_memory() const = 0;

  // Compares every rank's fingerprint of `op` and throws InvalidArgument naming two ranks that
  // disagree (op, dtype, count, root). Every rank learns every fingerprint, so it also
  // synchronizes the ranks like a barrier: it is the whole of barrier and of split's agreement.
  virtual void check_agreement(const NativeOp& op) = 0;

  // Every collective below compares the ranks' fingerprints as part of the op (how is the
  // backend's choice: overlapped with the op, or first), so a mismatch fails every rank with
  // InvalidArgument naming both values, within the op and before it returns, instead of garbage
  // or a hang inside the library; never writing past a buffer or, after the error, into the
  // caller's buffers. After a mismatch the backend may be unusable (later ops fail).
  // `in` may equal `out` (in place).
  virtual void allreduce(const void* in, void* out, size_t count, DType dtype, ReduceOp reduce,
                         const NativeOp& op) = 0;
  virtual void broadcast(void* data, size_t count, DType dtype, int root, const NativeOp& op) = 0;
  // `out` is used on root only.
  virtual void reduce(const void* in, void* out, size_t count, DType dtype, ReduceOp reduce,
                      int root, const NativeOp& op) = 0;
  // `out` holds size() blocks of `count`; `in` may already be this rank's block of `out`.
  virtual void allgather(const void* in, void* out, size_t count, DType dtype,
                         const NativeOp& op) = 0;
  // `in` holds size() blocks of `count`; `out` receives this rank's reduced block.
  virtual void reduce_scatter(const void* in, void* out, size_t count, DType dtype,
                              ReduceOp reduce, const NativeOp& op) = 0;
  // `in` and `out` hold size() blocks of `count` and do not overlap.
  virtual void alltoall(const void* in, void* out, size_t count, DType dtype,
                        const NativeOp& op) = 0;
  // Point to point, FIFO per peer; a mismatched pair fails with InvalidArgument naming both.
  virtual void send(const void* data, size_t bytes, int peer, const NativeOp& op) = 0;
  virtual void recv(void* data, size_t bytes, int peer, const NativeOp& op) = 0;
  // Every message posted before any is waited for, so that neighbours sending each other large
  // messages do not deadlock; returns when all have completed. Messages to one peer keep their
  // order (with each other and with earlier send/recv), so they pair with the peer's in order.
  virtual void batch_p2p(std::span<const NativeMessage> messages, const NativeOp& op) = 0;

  // Collective over this group, called after check_agreement() of the split: ranks with the
  // same color form a new group ordered by (key, old rank); nullptr for a negative color.
  virtual std::unique_ptr<NativeBackend> split(int color, int key, Deadline deadline) = 0;

  // Fails the running op and every later one with Aborted, and tells the peers. Any thread,
  // any number of times.
  virtual void abort(const std::string& reason) = 0;
  // abort(), except that this rank and the peers fail with `code` (see Transport::abort_with).
  virtual void abort_with(ErrorCode code, const std::string& reason) {
    (void)code;
    abort(reason);
  }
};

// The message of a failed check_agreement: `fps` holds every rank's fingerprint (index = rank);
// empty when all agree. Shared by the backends so they word it alike.
std::string describe_disagreement(int me, const char* backend, const Fingerprint* fps, int n);

}  // namespace weft::comm
