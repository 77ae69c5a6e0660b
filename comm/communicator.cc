#include "comm/communicator.h"

#include <algorithm>

#include "comm/communicator_impl.h"
#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::comm {

AllreduceAlgo parse_allreduce_algo(const std::string& name) {
  if (name == "auto") return AllreduceAlgo::automatic;
  if (name == "ring") return AllreduceAlgo::ring;
  if (name == "recursive_doubling") return AllreduceAlgo::recursive_doubling;
  if (name == "one_shot") return AllreduceAlgo::one_shot;
  throw Error(ErrorCode::InvalidArgument, "unknown allreduce algorithm '" + name +
                                              "': use auto, ring, recursive_doubling or one_shot");
}

CommOptions CommOptions::from_env() {
  CommOptions o;
  o.timeout = env::timeout();
  o.algo = parse_allreduce_algo(env::get("WEFT_ALGO"));
  o.one_shot_bytes =
      env::parse_bytes(env::get("WEFT_ONE_SHOT_BYTES"), "WEFT_ONE_SHOT_BYTES");
  o.small_bytes = env::parse_bytes(env::get("WEFT_SMALL_BYTES"), "WEFT_SMALL_BYTES");
  o.segment_bytes = env::parse_bytes(env::get("WEFT_SEGMENT_BYTES"), "WEFT_SEGMENT_BYTES");
  o.direct_bytes = env::parse_bytes(env::get("WEFT_DIRECT_BYTES"), "WEFT_DIRECT_BYTES");
  const std::string hierarchy = env::get("WEFT_HIERARCHY");
  if (hierarchy != "0" && hierarchy != "1")
    throw Error(ErrorCode::InvalidArgument,
                "WEFT_HIERARCHY must be 0 or 1, not '" + hierarchy + "'");
  o.hierarchical = hierarchy == "1";
  if (o.segment_bytes < 64)
    throw Error(ErrorCode::InvalidArgument, "WEFT_SEGMENT_BYTES must be at least 64");
  return o;
}

Communicator::Communicator(std::unique_ptr<Transport> transport, GroupContext context,
                           CommOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->transport = std::move(transport);
  impl_->context = std::move(context);
  impl_->options = options;
  // Scratch: the ring and chain algorithms need a few segments, recursive doubling a whole
  // small message. Allocated (and touched) once here, never in an op.
  impl_->scratch = Buffer(std::max(3 * options.segment_bytes, options.small_bytes));
  impl_->send_seq.assign(impl_->size(), 0);
  impl_->recv_seq.assign(impl_->size(), 0);
  impl_->executor = Executor::create(impl_->rank());
  watch_losses();
  if (impl_->context.make_node_transport && impl_->size() > 1) meet_nodes();
}

Communicator::Communicator(std::unique_ptr<NativeBackend> native, GroupContext context,
                           CommOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->native = std::move(native);
  impl_->context = std::move(context);
  impl_->options = options;
  impl_->send_seq.assign(impl_->size(), 0);
  impl_->recv_seq.assign(impl_->size(), 0);
  impl_->executor = Executor::create(impl_->rank());
  watch_losses();
}

// A rank lost (hung, stopped, dead) ends the job: this communicator's waits in its transport
// or native backend stop now, each failing with PeerLost naming that rank.
void Communicator::watch_losses() {
  if (!impl_->context.store) return;
  impl_->loss_watch = impl_->context.store->watch_losses(
      [this](const std::string& notice) { abort(notice); });
}

// The ranks' nodes (GroupContext::make_node_transport): every rank's node key and vote are
// gathered, and when the group spans several nodes, some holding several of its ranks, and every
// rank votes for it, each rank joins its node's group (over shared memory) and each node's leader
// the leaders' group (over this group's transport): see comm/hierarchy.h. Every rank decides from
// the same gathered values, so all take the same path.
void Communicator::meet_nodes() {
  Impl& m = *impl_;
  const int n = size();
  const bool votes = m.options.hierarchical && m.options.algo == AllreduceAlgo::automatic;
  uint64_t mine[2] = {m.context.node_key, votes ? 1u : 0u};
  std::vector<uint64_t> all(2 * static_cast<size_t>(n));
  allgather(Tensor::flat(mine, DType::i64, 2),
            Tensor::flat(all.data(), DType::i64, all.size()))
      .wait();
  // The gather is the set-up's, not one of the caller's collectives: theirs are numbered from #1,
  // as on every other group. Each peer's messages arrive in order, so the gather's are all read
  // before the next op's.
  m.seq = 0;
  std::vector<uint64_t> keys(n);
  bool everyone = true;
  for (int r = 0; r < n; r++) {
    keys[r] = all[2 * r];
    everyone = everyone && all[2 * r + 1] != 0;
  }
  NodeLayout layout = node_layout(keys, rank());
  if (!everyone || !layout.hierarchical()) return;
  // The node's and the leaders' groups hold no hierarchy of their own.
  GroupContext sub = m.context;
  sub.make_node_transport = nullptr;
  std::unique_ptr<Communicator> node, leaders;
  const std::vector<int>& node_ranks = layout.nodes[layout.node];
  if (node_ranks.size() > 1) {
    GroupContext c = sub;
    c.backend = "shm";
    c.make_transport = m.context.make_node_transport;
    c.group_tag = m.context.group_tag + ".node" + std::to_string(layout.node);
    node = m.child(std::move(c), node_ranks, m.context.make_node_transport);
  }
  if (layout.local == 0) {  // after the node's group: its ranks all build that one first
    GroupContext c = sub;
    c.group_tag = m.context.group_tag + ".leaders";
    leaders = m.child(std::move(c), layout.leaders(), m.context.make_transport);
  }
  WEFT_INFO("group " << m.context.group_tag << " spans " << layout.nodes.size()
                     << " nodes: allreduce inside node " << layout.node << " ("
                     << node_ranks.size() << " ranks), then across their leaders");
  auto made = std::make_unique<Hierarchy>(std::move(layout), rank(), n, std::move(node),
                                          std::move(leaders));
  // abort() may run on any thread (the store's loss watch): it reads the hierarchy under
  // abort_mu, and one made after an abort starts aborted.
  std::lock_guard lock(m.abort_mu);
  m.hierarchy = std::move(made);
  if (m.aborted.load()) m.hierarchy->abort(m.abort_reason, ErrorCode::Aborted);
}

Communicator::~Communicator() {
  impl_->loss_watch.reset();  // no abort from the store's thread while this one goes away
  impl_->executor->stop();  // before the transport and scratch the ops use go away
  impl_->hierarchy.reset();  // the node's and the leaders' groups, idle now
  // Then the transport, while the scratch lives: closing, MPI's sends of a failed op may read it.
  impl_->transport.reset();
  impl_->native.reset();
}

void Communicator::Impl::refuse_host_tensor(OpKind op, const Tensor& t) const {
  throw Error(ErrorCode::InvalidArgument,
              where(op) + " got a tensor on " + t.device().str() + " but backend " +
                  native->name() +
                  " moves CUDA memory only; pass a cuda tensor, or use a host backend (" +
                  backend_names(BackendMemory::host) + ")");
}

int Communicator::rank() const { return impl_->rank(); }
int Communicator::size() const { return impl_->size(); }
const char* Communicator::backend() const { return impl_->context.backend.c_str(); }

Work Communicator::allreduce(const Tensor& data, ReduceOp op) { return allreduce(data, data, op); }

Work Communicator::allreduce(const Tensor& in_tensor, const Tensor& out_tensor, ReduceOp op) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, in_tensor, out_tensor, true))
    return d->allreduce(in_tensor, out_tensor, op);
  m.check_same(OpKind::allreduce, in_tensor, out_tensor, in_tensor.numel(),
               "they must have the same dtype and size");
  Span in(in_tensor), out(out_tensor);
  Fingerprint fp = m.next(OpKind::allreduce, in.dtype, in.numel, op);
  if (m.native)
    return m.submit_native(fp, in, out,
                           [op](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.allreduce(in.data, out.data, in.numel, in.dtype, op, o);
                           });
  DirectAccess* direct = m.direct_for(out.nbytes());
  if (in.on_device() && out.on_device() && !m.moves_device_memory())
    return m.submit_staged_allreduce(fp, in, out, op, direct);
  // No direct access (below WEFT_DIRECT_BYTES, a transport without it) nor hierarchy: a body
  // that captures (and destroys) nothing more.
  if (!direct && !m.hierarchy)
    return m.submit(fp, in, out, [&m, op](Span in, Span out, const AlgoContext& ctx) {
      ctx.ops.copy(out.data, in.data, in.nbytes());
      m.allreduce_in_place(ctx, out.data, out.numel, out.dtype, op);
    });
  // Across nodes the parent's transport has no direct access: the node's segment is held here.
  std::shared_ptr<RegisteredSegment> held =
      m.hierarchy && !out.on_device() ? m.hierarchy->hold(out.data, out.nbytes()) : nullptr;
  return m.submit(fp, in, out, [&m, op, direct, source = m.direct_source(direct, out),
                                held = std::move(held)](Span in, Span out, const AlgoContext& ctx) {
    ctx.ops.copy(out.data, in.data, in.nbytes());
    if (m.run_direct(direct, ctx, source, out.data, out.nbytes(), [&](auto bases) {
          allreduce_direct(ctx, bases, out.numel, out.dtype, op);
        }))
      return;
    m.allreduce_in_place(ctx, out.data, out.numel, out.dtype, op);
  });
}

RegisteredBuffer Communicator::alloc(size_t bytes) {
  if (impl_->hierarchy) return impl_->hierarchy->alloc(bytes);
  DirectAccess* direct = impl_->transport ? impl_->transport->direct_access() : nullptr;
  if (direct == nullptr) return RegisteredBuffer(Buffer(bytes));
  return RegisteredBuffer(direct->allocate(bytes));
}

CheckpointCommitter* Communicator::checkpoint_committer() const {
  return impl_->context.store ? impl_->context.store->checkpoint_committer() : nullptr;
}

uint64_t Communicator::direct_ops() const {
  return impl_->direct_ops.load(std::memory_order_relaxed) +
         (impl_->hierarchy ? impl_->hierarchy->direct_ops() : 0);
}

uint64_t Communicator::hierarchical_ops() const {
  return impl_->hierarchy ? impl_->hierarchy->ops() : 0;
}

uint64_t Communicator::single_copy_messages() const {
  return impl_->transport ? impl_->transport->single_copy_messages() : 0;
}

Work Communicator::broadcast(const Tensor& tensor, int root) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, tensor, tensor, true)) return d->broadcast(tensor, root);
  m.check_device(OpKind::broadcast, tensor);
  m.check_rank(OpKind::broadcast, root, "root");
  Span data(tensor);
  Fingerprint fp = m.next(OpKind::broadcast, data.dtype, data.numel, ReduceOp::sum, root);
  // The root only reads its tensor, the others only write theirs.
  Span in = rank() == root ? data : Span(), out = rank() == root ? Span() : data;
  if (m.native)
    return m.submit_native(fp, in, out,
                           [root](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             Span d = in.data ? in : out;
                             b.broadcast(d.data, d.numel, d.dtype, root, o);
                           });
  DirectAccess* direct = m.direct_for(data.nbytes());
  return m.submit(fp, in, out, [&m, root, direct, source = m.direct_source(direct, data)](
                                   Span in, Span out, const AlgoContext& ctx) {
    Span d = in.data ? in : out;
    if (m.run_direct(direct, ctx, source, d.data, d.nbytes(),
                     [&](auto bases) { broadcast_direct(ctx, bases, d.nbytes(), root); }))
      return;
    exchange_fingerprints(ctx);  // the root receives nothing that could tell it of a mismatch
    comm::broadcast(ctx, d.data, d.nbytes(), root, m.options.small_bytes);
  });
}

Work Communicator::reduce(const Tensor& in_tensor, const Tensor& out_tensor, int root,
                          ReduceOp op) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, in_tensor, out_tensor, true))
    return d->reduce(in_tensor, out_tensor, root, op);
  m.check_rank(OpKind::reduce, root, "root");
  if (rank() == root)
    m.check_same(OpKind::reduce, in_tensor, out_tensor, in_tensor.numel(),
                 "on the root they must match");
  else
    m.check_device(OpKind::reduce, in_tensor);
  Span in(in_tensor), out = rank() == root ? Span(out_tensor) : Span();
  Fingerprint fp = m.next(OpKind::reduce, in.dtype, in.numel, op, root);
  if (m.native)
    return m.submit_native(fp, in, out,
                           [root, op](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.reduce(in.data, out.data, in.numel, in.dtype, op, root, o);
                           });
  // The root publishes its output, holding its input when the op starts; the others their input.
  DirectAccess* direct = m.direct_for(in.nbytes());
  const bool is_root = rank() == root;
  return m.submit(fp, in, out, [&m, root, op, is_root, direct,
                                source = m.direct_source(direct, is_root ? out : in)](
                                   Span in, Span out, const AlgoContext& ctx) {
    Span mine = is_root ? out : in;
    if (direct && is_root) ctx.ops.copy(out.data, in.data, in.nbytes());
    if (m.run_direct(direct, ctx, source, mine.data, mine.nbytes(), [&](auto bases) {
          reduce_direct(ctx, bases, in.numel, in.dtype, op, root);
        }))
      return;
    exchange_fingerprints(ctx);  // the chain's first rank receives nothing that could tell it
    comm::reduce(ctx, in.data, out.data, in.numel, in.dtype, op, root);
  });
}

Work Communicator::allgather(const Tensor& in_tensor, const Tensor& out_tensor) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, in_tensor, out_tensor, true))
    return d->allgather(in_tensor, out_tensor);
  m.check_same(OpKind::allgather, in_tensor, out_tensor, in_tensor.numel() * size(),
               "the output must hold size() x the input's elements");
  Span in(in_tensor), out(out_tensor);
  Fingerprint fp = m.next(OpKind::allgather, in.dtype, in.numel);
  if (m.native)
    return m.submit_native(fp, in, out, [](Span in, Span out, NativeBackend& b, const NativeOp& o) {
      b.allgather(in.data, out.data, in.numel, in.dtype, o);
    });
  DirectAccess* direct = m.direct_for(out.nbytes());
  return m.submit(fp, in, out, [&m, r = rank(), direct, source = m.direct_source(direct, in)](
                                   Span in, Span out, const AlgoContext& ctx) {
    if (m.run_direct(direct, ctx, source, in.data, in.nbytes(),
                     [&](auto bases) { allgather_direct(ctx, bases, out.data, in.nbytes()); }))
      return;
    char* mine = static_cast<char*>(out.data) + static_cast<size_t>(r) * in.nbytes();
    ctx.ops.copy(mine, in.data, in.nbytes());
    allgather_ring(ctx, out.data, in.numel, in.dtype);
  });
}

Work Communicator::reduce_scatter(const Tensor& in_tensor, const Tensor& out_tensor,
                                  ReduceOp op) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, in_tensor, out_tensor, true))
    return d->reduce_scatter(in_tensor, out_tensor, op);
  m.check_same(OpKind::reduce_scatter, in_tensor, out_tensor, in_tensor.numel() / size(),
               "the input must hold size() x the output's elements");
  if (in_tensor.numel() != out_tensor.numel() * size())
    throw Error(ErrorCode::InvalidArgument,
                m.where(OpKind::reduce_scatter) + ": input " + in_tensor.describe() +
                    " must hold " + std::to_string(size()) + " x the output's " +
                    std::to_string(out_tensor.numel()) + " elements");
  Span in(in_tensor), out(out_tensor);
  Fingerprint fp = m.next(OpKind::reduce_scatter, in.dtype, out.numel, op);
  if (m.native)
    return m.submit_native(fp, in, out,
                           [op](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.reduce_scatter(in.data, out.data, out.numel, in.dtype, op, o);
                           });
  DirectAccess* direct = m.direct_for(in.nbytes());
  return m.submit(fp, in, out, [&m, op, direct, source = m.direct_source(direct, in)](
                                   Span in, Span out, const AlgoContext& ctx) {
    if (m.run_direct(direct, ctx, source, in.data, in.nbytes(), [&](auto bases) {
          reduce_scatter_direct(ctx, bases, out.data, out.numel, in.dtype, op);
        }))
      return;
    // The ring reduces partial sums in place, so work on the input (documented: clobbered).
    reduce_scatter_ring(ctx, in.data, out.data, out.numel, in.dtype, op);
  });
}

Work Communicator::alltoall(const Tensor& in_tensor, const Tensor& out_tensor) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, in_tensor, out_tensor, true))
    return d->alltoall(in_tensor, out_tensor);
  m.check_same(OpKind::alltoall, in_tensor, out_tensor, in_tensor.numel(),
               "they must have the same dtype and size");
  if (in_tensor.numel() % size() != 0)
    throw Error(ErrorCode::InvalidArgument,
                m.where(OpKind::alltoall) + ": " + std::to_string(in_tensor.numel()) +
                    " elements do not split into " + std::to_string(size()) + " equal blocks");
  if (in_tensor.numel() && in_tensor.data() == out_tensor.data())
    throw Error(ErrorCode::InvalidArgument,
                m.where(OpKind::alltoall) + ": input and output must be different buffers");
  Span in(in_tensor), out(out_tensor);
  Fingerprint fp = m.next(OpKind::alltoall, in.dtype, in.numel);
  if (m.native)
    return m.submit_native(fp, in, out,
                           [n = size()](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.alltoall(in.data, out.data, in.numel / n, in.dtype, o);
                           });
  DirectAccess* direct = m.direct_for(in.nbytes());
  return m.submit(fp, in, out, [&m, n = size(), direct, source = m.direct_source(direct, in)](
                                   Span in, Span out, const AlgoContext& ctx) {
    if (m.run_direct(direct, ctx, source, in.data, in.nbytes(), [&](auto bases) {
          alltoall_direct(ctx, bases, out.data, in.nbytes() / n);
        }))
      return;
    alltoall_pairwise(ctx, in.data, out.data, in.nbytes() / n);
  });
}

Work Communicator::barrier() {
  Impl& m = *impl_;
  Fingerprint fp = m.next(OpKind::barrier, DType::u8, 1, ReduceOp::max);
  // Natively the agreement check is the barrier: no rank learns every rank's fingerprint before
  // every rank has sent it.
  if (m.native)
    return m.submit_native(fp, Span(), Span(), [](Span, Span, NativeBackend& b, const NativeOp& o) {
      b.check_agreement(o);
    });
  return m.submit_algo(fp, &host_buffer_ops(), nullptr, [](const AlgoContext& ctx) {
    uint8_t token = 0;
    allreduce_recursive_doubling(ctx, &token, 1, DType::u8, ReduceOp::max);
  });
}

std::unique_ptr<Communicator> Communicator::split(int color, int key) {
  Impl& m = *impl_;
  if (m.native) {
    // In order with the other ops, and checked like them; it also shows that every rank has
    // reached the split, so the library's (blocking) split below only waits for its own exchange.
    Fingerprint fp = m.next(OpKind::split, DType::i32, 2);
    m.submit_native(fp, Span(), Span(), [](Span, Span, NativeBackend& b, const NativeOp& o) {
       b.check_agreement(o);
     }).wait();
    int index = m.splits++;
    auto child = m.native->split(color, key, deadline_after(m.options.timeout));
    if (!child) return nullptr;
    GroupContext context = m.context;  // native backends have no device route: see init.cc
    context.group_tag =
        m.context.group_tag + ".s" + std::to_string(index) + "c" + std::to_string(color);
    return std::make_unique<Communicator>(std::move(child), std::move(context), m.options);
  }
  int n = size();
  std::vector<int32_t> mine = {color, key};
  std::vector<int32_t> all(2 * static_cast<size_t>(n));
  allgather(Tensor::flat(mine.data(), DType::i32, 2), Tensor::flat(all.data(), DType::i32, all.size()))
      .wait();
  int index = m.splits++;
  if (color < 0) return nullptr;
  std::vector<std::pair<int, int>> members;  // (key, old rank)
  for (int r = 0; r < n; r++)
    if (all[2 * r] == color) members.emplace_back(all[2 * r + 1], r);
  std::sort(members.begin(), members.end());
  // The child inherits make_device_route: its CUDA tensors take a route of its own ranks.
  GroupContext child = m.context;
  child.group_tag = m.context.group_tag + ".s" + std::to_string(index) + "c" + std::to_string(color);
  std::vector<int> ranks;
  for (const auto& member : members) ranks.push_back(member.second);
  return m.child(std::move(child), ranks, m.context.make_transport);
}

void Communicator::record_op_times(bool on) {
  impl_->record_op_times = on;
  impl_->executor->record_times(on);
  if (impl_->device_route) impl_->device_route->record_op_times(on);
}

void Communicator::abort(const std::string& reason) { abort(reason, ErrorCode::Aborted); }

void Communicator::abort(const std::string& reason, ErrorCode code) {
  code = code_for_peers(code);
  {
    std::lock_guard lock(impl_->abort_mu);
    if (impl_->abort_reason.empty()) impl_->abort_reason = reason;
    impl_->aborted.store(true);
    if (impl_->device_route) impl_->device_route->abort(reason, code);
    if (impl_->hierarchy) impl_->hierarchy->abort(reason, code);
  }
  if (impl_->native)
    code == ErrorCode::Aborted ? impl_->native->abort(reason)
                               : impl_->native->abort_with(code, reason);
  else
    code == ErrorCode::Aborted ? impl_->transport->abort(reason)
                               : impl_->transport->abort_with(code, reason);
}

}  // namespace weft::comm
