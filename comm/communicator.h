#pragma once
// Communicator: collectives on a group of ranks, run either by weft's own algorithms over a
// Transport (tcp, shm, mpi-ring, inproc) or by a NativeBackend (mpi). Every call returns a Work
// at once; ops run one after another, in call order, on the communicator's worker thread (or
// inline on the caller's thread when it waits on an op that has not started yet, which saves
// two thread hand-offs for the common call-then-wait pattern).
//
// Every rank of the group must issue the same collectives in the same order with matching
// dtype, count, reduce op and root; a mismatch fails with InvalidArgument naming both ranks'
// values, on every rank of the group (those that did not see it themselves hear it from one
// that did). Messages carry the op's fingerprint; broadcast and reduce, in which some rank
// only sends, first exchange every rank's fingerprint. A send and its recv must agree on dtype
// and count: the receiver fails, and so does the sender, in its send when the message is too
// large to complete before the receiver reads it, else at its next op on this communicator.
//
// Because ops run one after another, two ranks that each send the other a large message before
// receiving deadlock (each send waits for the peer's receive, which waits behind it): exchanges
// between neighbours, as in pipeline parallelism, go as one batch_p2p (or send_recv), which
// posts all its messages at once.
//
// Tensors may live on the host or on a GPU. Native NCCL takes CUDA tensors only. Over a
// transport that moves GPU memory (nccl-ring) weft's algorithms work on CUDA tensors in place,
// with the CUDA kernels (BufferOps). Every other backend moves host memory and copies CUDA
// tensors through pinned host buffers on the way (DeviceStaging; an allreduce in chunks,
// copying one while reducing the one before), unless the
// communicator has a device route (backend auto, a GPU per rank): then ops on CUDA tensors go to
// a native NCCL communicator of the same ranks. Every rank must then pass its tensors on the
// same kind of device, as every rank of an NCCL job does.
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "comm/buffer_ops.h"
#include "comm/device_staging.h"
#include "comm/native_backend.h"
#include "comm/registered_buffer.h"
#include "comm/rendezvous/store.h"
#include "comm/transport.h"
#include "comm/transport_setup.h"
#include "comm/work.h"
#include "runtime/tensor.h"

namespace weft::comm {

// The machinery behind a communicator (comm/group_context.h); a program that only calls
// collectives never needs it.
class Transport;
class NativeBackend;
struct GroupContext;

enum class AllreduceAlgo { automatic, ring, recursive_doubling, one_shot };
AllreduceAlgo parse_allreduce_algo(const std::string& name);

struct CommOptions {
  std::chrono::milliseconds timeout{300'000};  // deadline for each op, from when it starts
  AllreduceAlgo algo = AllreduceAlgo::automatic;
  size_t one_shot_bytes = 256;        // at or below, on up to 8 ranks: one shot (all to all)
  size_t small_bytes = 64 * 1024;     // at or below: recursive doubling; above: ring
  size_t segment_bytes = 128 * 1024;  // pipelining unit of the ring algorithms
  // At or above, with algo automatic: allreduce in place on registered memory (when every
  // rank's tensor is; below, the mailbox path is as fast).
  size_t direct_bytes = 64 * 1024;
  // Across nodes (comm/hierarchy.h): allreduce inside each node, then across the nodes' leaders.
  // Every rank votes when its communicator is made; one voting no (or forcing an algorithm) keeps
  // the whole group on the flat algorithms.
  bool hierarchical = true;
  // CUDA tensors on a host backend: an allreduce copies and reduces them in chunks of this size.
  size_t staging_chunk_bytes = 4u << 20;
  // Reads WEFT_TIMEOUT, WEFT_ALGO, WEFT_ONE_SHOT_BYTES, WEFT_SMALL_BYTES, WEFT_SEGMENT_BYTES,
  // WEFT_DIRECT_BYTES, WEFT_HIERARCHY.
  static CommOptions from_env();
};

// One message of Communicator::batch_p2p: send `data` to `peer`, or receive into it from `peer`.
struct P2P {
  enum Kind { send, recv } kind;
  Tensor data;
  int peer;
};

class Communicator {
 public:
  // Built by init_from_env() and split(); tests and embedders build their own groups:
  // weft's algorithms over `transport`.
  Communicator(std::unique_ptr<Transport> transport, GroupContext context, CommOptions options);
  // The library's own collectives (MPI_Allreduce, ...) through `native`.
  Communicator(std::unique_ptr<NativeBackend> native, GroupContext context, CommOptions options);
  ~Communicator();  // finishes queued ops (bounded by their deadlines), joins the worker
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int size() const;
  const char* backend() const;

  // `bytes` of zeroed host memory that every local rank of this group can map (registered;
  // over shm): an allreduce whose tensor lives there on every rank runs in place, each rank
  // reducing its share straight from its peers' buffers. Across nodes, registered with this
  // rank's node, whose phases of a hierarchical allreduce then run in place. Over other
  // backends, plain memory. Registered with this communicator's group only (another communicator's
  // ops take it as plain memory). Not collective: ranks allocate when they like. Drop it only once
  // the ops on it are done.
  RegisteredBuffer alloc(size_t bytes);
  // Collectives so far that ran in place on registered memory (the rest took the transport's
  // algorithms): how a program or benchmark tells which path ran. Across nodes, an allreduce
  // counts when its phases inside the node ran in place.
  uint64_t direct_ops() const;
  // Allreduces so far that went hierarchically across nodes: inside each node, then across the
  // nodes' leaders, then inside each node again (comm/hierarchy.h); the rest ran flat.
  uint64_t hierarchical_ops() const;
  // Messages so far that went with one copy straight from the sender's plain memory to the
  // receiver's (over shm: process_vm_readv, for large messages where the kernel allows it;
  // WEFT_SHM_CMA), the rest through the transport's buffers.
  uint64_t single_copy_messages() const;
  // The job's checkpoint committer (its coordinator), or nullptr where the ranks met without one
  // (native MPI, a lone rank): then they commit checkpoints among themselves.
  CheckpointCommitter* checkpoint_committer() const;

  // In place: `data` on every rank becomes the reduction over ranks.
  Work allreduce(const Tensor& data, ReduceOp op = ReduceOp::sum);
  // Out of place: `out` (same shape as `in`) receives the reduction; `in` is unchanged.
  Work allreduce(const Tensor& in, const Tensor& out, ReduceOp op);
  Work broadcast(const Tensor& data, int root);
  // `out` is written on root only (others may pass an empty Tensor).
  Work reduce(const Tensor& in, const Tensor& out, int root, ReduceOp op = ReduceOp::sum);
  // out has size() x in.numel() elements, rank r's input at offset r x in.numel().
  Work allgather(const Tensor& in, const Tensor& out);
  // in has size() x out.numel() elements; rank r gets the reduction of block r.
  Work reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum);
  // in and out have size() x block elements; block j of `in` goes to rank j's block rank().
  Work alltoall(const Tensor& in, const Tensor& out);
  // Point to point, in order per peer. A send completes once its bytes are on the way (small
  // messages at once), so `send(right); recv(left).wait()` on every rank works.
  Work send(const Tensor& data, int peer);
  Work recv(const Tensor& data, int peer);
  // Several sends and receives as one op: all are posted before any is waited for, and the Work
  // completes when every one has, so neighbours exchanging large tensors cannot deadlock. Like
  // every op it starts once the ops called before it on this communicator have finished.
  // Messages to the same peer keep call order, within the batch and with send/recv and other
  // batches: the k-th message this rank sends to p is the k-th that p receives from this rank,
  // whichever call each side used (a batch may pair with a peer's plain send and recv). At most
  // 64 sends and 64 receives, all on one device; tensors must stay valid until the Work is done.
  Work batch_p2p(std::span<const P2P> ops);
  // batch_p2p of one send to `to` and one receive from `from` (they may be the same rank).
  Work send_recv(const Tensor& send, int to, const Tensor& recv, int from);
  Work barrier();

  // Collective over this group: ranks with the same color form a new communicator, ordered by
  // (key, old rank). A negative color returns nullptr (the rank joins no group).
  std::unique_ptr<Communicator> split(int color, int key);

  // Whether ops record how long they ran (Work::run_seconds); off by default, since it costs
  // two clock reads per op, a sixth of an 8-byte allreduce on shared memory.
  void record_op_times(bool on);

  // Fails every queued and running op with Aborted and tells peers. Safe to call twice and
  // from any thread.
  void abort(const std::string& reason = "abort() called");
  // abort(), except that this rank's ops and the peers' fail with `code` where it is
  // InvalidArgument (ranks that disagree on a collective all fail so), else Aborted: how a group
  // run through other groups (comm/hierarchy.h) passes a mismatch on to them.
  void abort(const std::string& reason, ErrorCode code);

 private:
  friend class Hierarchy;  // its node's and leaders' ops carry the parent op's fingerprint
  void watch_losses();
  void meet_nodes();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Builds the world communicator for this process from the environment (World::from_env()) and
// `backend` (empty reads WEFT_BACKEND):
//   tcp, shm   weft's algorithms over sockets / shared memory; the ranks meet through the store
//              named by WEFT_STORE_ADDR (weftrun), or MASTER_ADDR/PORT (rank 0 serves it), or,
//              under mpirun with neither, a store rank 0 serves and announces over MPI;
//   auto       shm when every rank is on this node, tcp otherwise; CUDA tensors over native
//              NCCL when every local rank has a GPU of its own (else staged, like shm's);
//   mpi-ring   weft's algorithms over MPI_Isend/MPI_Irecv (launch with mpirun; no store);
//   mpi        MPI's own collectives (launch with mpirun; no store);
//   nccl-ring  weft's algorithms over ncclSend/ncclRecv, a GPU per rank (the store as tcp's);
//   nccl       NCCL's own collectives on CUDA tensors, a GPU per rank (the store as tcp's).
// Backends that weft was built without fail with Unavailable saying so. It also names this
// process's log lines after World::from_env()'s rank (log::set_rank), the one place weft sets
// that prefix; the log level is WEFT_LOG's alone. When weft started MPI
// (any backend under mpirun), dropping the process's last MPI-backed communicator calls
// MPI_Finalize, which first waits (up to WEFT_TIMEOUT) for every rank to do the same.
std::unique_ptr<Communicator> init_from_env(const std::string& backend = "");

}  // namespace weft::comm
