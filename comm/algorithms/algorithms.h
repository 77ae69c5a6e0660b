#pragma once
// weft's own collective algorithms, written once against Transport so that every transport
// (tcp, shm, inproc, mpi-ring, nccl-ring) runs the same code. Each lives in its own file;
// this header holds their signatures and the small pieces they share.
#include <cstddef>
#include <span>
#include <utility>

#include "comm/buffer_ops.h"
#include "comm/transport.h"
#include "runtime/dtype.h"

namespace weft::comm {

// What an algorithm needs besides its buffers.
struct AlgoContext {
  Transport& transport;
  BufferOps& ops;       // copies and reductions on the buffers (host, or a GPU: buffer_ops.h)
  Fingerprint fp;       // stamped on every message of this collective
  LazyDeadline deadline;  // the whole collective must finish by then (counted from its first wait)
  size_t segment_bytes; // pipelining unit
  void* scratch;        // where ops work: at least 2 x segment_bytes, and small_bytes
  size_t scratch_bytes;
  // Read from the transport once per op: algorithms ask often, and each ask was a virtual call.
  int rank_in_group = transport.rank();
  int group_size = transport.size();
  int rank() const { return rank_in_group; }
  int size() const { return group_size; }
};

// Elements [first, first + count) of block `i` when `total` elements are split into `parts`
// nearly equal blocks (the first total % parts blocks get one more).
std::pair<size_t, size_t> block_range(size_t total, int parts, int i);

// Posts a recv from `from` and a send to `to` (either may be skipped with a negative peer) and
// waits for both: the step every ring and exchange algorithm is made of.
void send_recv(const AlgoContext& ctx, int to, const void* send_buf, size_t send_bytes, int from,
               void* recv_buf, size_t recv_bytes);
// The same for any number of messages each way (at most kMaxExchange), all posted before any
// wait; messages to one peer are posted in the order given. Each message carries ctx.fp, or its
// own fingerprint where `fp` is set (batch_p2p: every message is a send or recv of its own).
// No default member initializers: an array of them on the stack (one-shot) would be written
// whole before its first n - 1 entries are set, a fifth of that algorithm's own cost.
inline constexpr size_t kMaxExchange = 64;
struct Outgoing {
  int peer;
  const void* data;
  size_t bytes;
  const Fingerprint* fp;  // null: ctx.fp
};
struct Incoming {
  int peer;
  void* data;
  size_t bytes;
  const Fingerprint* fp;  // null: ctx.fp
};
void exchange(const AlgoContext& ctx, std::span<const Outgoing> sends,
              std::span<const Incoming> recvs);

void allreduce_ring(const AlgoContext& ctx, void* data, size_t count, DType dtype, ReduceOp op);
void allreduce_recursive_doubling(const AlgoContext& ctx, void* data, size_t count, DType dtype,
                                  ReduceOp op);
// Every rank sends its buffer to every other and sums all n itself: needs size() x bytes of
// scratch; one wait instead of log2(n), for tiny messages. On at most kOneShotMaxRanks ranks.
inline constexpr int kOneShotMaxRanks = 8;
void allreduce_one_shot(const AlgoContext& ctx, void* data, size_t count, DType dtype,
                        ReduceOp op);
// out holds size() blocks of `count`; this rank's block is already in place.
void allgather_ring(const AlgoContext& ctx, void* out, size_t count, DType dtype);
// in holds size() blocks of `count` (clobbered as a work area); out receives this rank's block.
void reduce_scatter_ring(const AlgoContext& ctx, void* in, void* out, size_t count, DType dtype,
                         ReduceOp op);
void broadcast(const AlgoContext& ctx, void* data, size_t bytes, int root, size_t small_bytes);
// `out` is only written on root. Non-roots' data is reduced through scratch.
void reduce(const AlgoContext& ctx, const void* in, void* out, size_t count, DType dtype,
            ReduceOp op, int root);
void alltoall_pairwise(const AlgoContext& ctx, const void* in, void* out, size_t block_bytes);
// One rank's share of a collective on registered memory, run inside DirectAccess::run with
// bases[r] rank r's buffer mapped here (direct_collectives.cc). What each rank publishes:
// allreduce its data (the result is written into every buffer); reduce its input, the root its
// output holding its input; reduce_scatter, allgather, alltoall their input; broadcast its data.
void allreduce_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, size_t count,
                      DType dtype, ReduceOp op);
void reduce_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, size_t count,
                   DType dtype, ReduceOp op, int root);
void reduce_scatter_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, void* out,
                           size_t count, DType dtype, ReduceOp op);
void broadcast_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, size_t bytes,
                      int root);
void allgather_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, void* out,
                      size_t block_bytes);
void alltoall_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, void* out,
                     size_t block_bytes);

// Every rank learns every rank's ctx.fp; throws InvalidArgument, on every rank alike, when any
// two differ. Run before the collectives in which some rank only sends (broadcast, reduce).
void exchange_fingerprints(const AlgoContext& ctx);

}  // namespace weft::comm
