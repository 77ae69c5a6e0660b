#pragma once
// Hierarchy: a group that spans several nodes, seen as the ranks of this rank's node (a
// communicator over shared memory, whose registered memory lets its ops run in place) and the
// nodes' leaders (a communicator over the group's own transport, tcp). An allreduce reduces
// inside each node to its leader, allreduces across the leaders, and broadcasts inside each node:
// the hierarchical allreduce of Horovod and NCCL, which sends each node's data over the network
// once instead of once per rank.
//
// Made by the group's set-up (Communicator, from GroupContext::make_node_transport) when the
// ranks' gathered node keys say the group spans several nodes and some node holds several of its
// ranks (comm/node_layout.h); since every rank derives that from the same keys, either every rank
// of the group has one or none has, and every allreduce of the group takes the same path on all.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/node_layout.h"
#include "runtime/clock.h"

namespace weft::comm {

class Hierarchy {
 public:
  // `node`: this rank's node (null when it is alone there); `leaders`: the nodes' leaders (null
  // unless this rank leads its node). `group_size`: ranks of the whole group (an average's
  // divisor).
  Hierarchy(NodeLayout layout, int group_rank, int group_size, std::unique_ptr<Communicator> node,
            std::unique_ptr<Communicator> leaders);
  ~Hierarchy();

  // In place on host memory: `data` on every rank of the group becomes the reduction over all
  // of them, the same bytes on every rank (the leaders' result, broadcast). A failure aborts the
  // node's and the leaders' communicators, so that ranks waiting in another phase fail too (with
  // InvalidArgument after a mismatch, as the flat algorithms do), and is rethrown naming the
  // sub-group and which ranks of this group its rank numbers stand for. Each phase is an op of
  // its sub-group, all of them bounded by `deadline`, the group's op's (WEFT_TIMEOUT from its
  // start). `parent`: the group's op this runs (or a chunk of): each phase's messages carry its
  // dtype, reduce op and whole count, so ranks that disagree on them fail in the phase that
  // first meets them, every rank with InvalidArgument naming both.
  void allreduce(const Fingerprint& parent, Deadline deadline, void* data, size_t count,
                 DType dtype, ReduceOp op);

  // Memory registered with this rank's node (plain when it is alone there): an allreduce on it
  // on every rank of a node runs that node's phases in place.
  RegisteredBuffer alloc(size_t bytes);

  // The segment registered with this rank's node that holds [data, data + bytes), found when
  // the group's op is submitted (null for plain memory, or a rank alone on its node): the op
  // holds it, so that a buffer dropped while the op waits stays mapped until the op ends (an
  // error logged, not a crash), as on the flat direct path (Communicator::Impl::direct_source).
  std::shared_ptr<RegisteredSegment> hold(const void* data, size_t bytes) const;

  // Allreduces so far, and those whose phases inside the node ran in place.
  uint64_t ops() const { return ops_.load(std::memory_order_relaxed); }
  uint64_t direct_ops() const { return direct_ops_.load(std::memory_order_relaxed); }

  // Aborts the node's and the leaders' communicators, their ops failing with `code` where it is
  // InvalidArgument (a mismatch seen in one phase is every rank's), else Aborted.
  void abort(const std::string& reason, ErrorCode code);

 private:
  // "rank 3 (node 1): allreduce across nodes, in its node's group (ranks 2, 3, 4 of this group,
  // there 0, 1, 2)", or in the leaders' group: the sub-group's messages number ranks its own way.
  std::string where(bool across) const;

  NodeLayout layout_;
  int group_rank_;
  int group_size_;
  std::unique_ptr<Communicator> node_;
  std::unique_ptr<Communicator> leaders_;
  std::atomic<uint64_t> ops_{0}, direct_ops_{0};
};

}  // namespace weft::comm
