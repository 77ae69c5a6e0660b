#include "comm/hierarchy.h"

#include "comm/buffer_ops.h"
#include "comm/communicator_impl.h"
#include "runtime/buffer.h"
#include "runtime/error.h"

namespace weft::comm {

Hierarchy::Hierarchy(NodeLayout layout, int group_rank, int group_size,
                     std::unique_ptr<Communicator> node, std::unique_ptr<Communicator> leaders)
    : layout_(std::move(layout)),
      group_rank_(group_rank),
      group_size_(group_size),
      node_(std::move(node)),
      leaders_(std::move(leaders)) {}

Hierarchy::~Hierarchy() = default;

void Hierarchy::allreduce(const Fingerprint& parent, Deadline deadline, void* data, size_t count,
                          DType dtype, ReduceOp op) {
  // The phases sum; an average divides once, on the leader, so every rank gets its bytes. Their
  // fingerprints still say avg, and the parent's whole count (Communicator::Impl::next).
  const ReduceOp phase_op = op == ReduceOp::avg ? ReduceOp::sum : op;
  struct PartOf {
    Communicator* group;
    PartOf(Communicator* g, const Fingerprint& parent, Deadline deadline) : group(g) {
      if (!group) return;
      group->impl_->part_of = &parent;
      group->impl_->part_of_deadline = deadline;
    }
    ~PartOf() {
      if (group) group->impl_->part_of = nullptr;
    }
  } node_part(node_.get(), parent, deadline), leaders_part(leaders_.get(), parent, deadline);
  const Tensor t = Tensor::flat(data, dtype, count);
  const uint64_t in_place_before = node_ ? node_->direct_ops() : 0;
  bool across = false;  // which phase ran last, for the message
  try {
    // 1. The node's ranks reduce into its leader's buffer (in place on registered memory).
    if (node_) node_->reduce(t, t, /*root=*/0, phase_op).wait();
    // 2. The leaders allreduce the nodes' sums over the network.
    across = true;
    if (leaders_) {
      leaders_->allreduce(t, phase_op).wait();
      if (op == ReduceOp::avg) host_buffer_ops().scale_down(data, count, dtype, group_size_);
    }
    // 3. Each leader's result reaches its node's ranks.
    across = false;
    if (node_) node_->broadcast(t, /*root=*/0).wait();
  } catch (const Error& e) {
    abort(e.what(), e.code());
    std::string cause = e.what();  // "Code: message"
    cause.erase(0, std::string(error_code_name(e.code())).size() + 2);
    throw Error(e.code(), where(across) + ": " + cause);
  }
  ops_.fetch_add(1, std::memory_order_relaxed);
  if (node_ && node_->direct_ops() == in_place_before + 2)
    direct_ops_.fetch_add(1, std::memory_order_relaxed);
}

std::shared_ptr<RegisteredSegment> Hierarchy::hold(const void* data, size_t bytes) const {
  DirectAccess* direct = node_ && data ? node_->impl_->transport->direct_access() : nullptr;
  return direct ? direct->find(data, bytes) : nullptr;
}

RegisteredBuffer Hierarchy::alloc(size_t bytes) {
  return node_ ? node_->alloc(bytes) : RegisteredBuffer(Buffer(bytes));
}

void Hierarchy::abort(const std::string& reason, ErrorCode code) {
  if (node_) node_->abort(reason, code);
  if (leaders_) leaders_->abort(reason, code);
}

std::string Hierarchy::where(bool across) const {
  const std::vector<int> ranks = across ? layout_.leaders() : layout_.nodes[layout_.node];
  std::string group, there;
  for (size_t i = 0; i < ranks.size(); ++i) {
    group += (i ? ", " : "") + std::to_string(ranks[i]);
    there += (i ? ", " : "") + std::to_string(i);
  }
  return "rank " + std::to_string(group_rank_) + " (node " + std::to_string(layout_.node) +
         "): allreduce across nodes, in " +
         (across ? "the nodes' leaders' group" : "its node's group") + " (ranks " + group +
         " of this group, there " + there + ")";
}

}  // namespace weft::comm
