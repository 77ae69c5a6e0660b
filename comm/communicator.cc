#include "comm/communicator.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "comm/algorithms.h"
#include "comm/executor.h"
#include "runtime/buffer.h"
#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::comm {
namespace {

// What an op keeps of a Tensor.
struct Span {
  void* data;
  size_t numel;
  DType dtype;
  explicit Span(const Tensor& t) : data(t.data()), numel(t.numel()), dtype(t.dtype()) {}
  size_t nbytes() const { return numel * dtype_size(dtype); }
};

}  // namespace

AllreduceAlgo parse_allreduce_algo(const std::string& name) {
  if (name == "auto") return AllreduceAlgo::automatic;
  if (name == "ring") return AllreduceAlgo::ring;
  if (name == "recursive_doubling") return AllreduceAlgo::recursive_doubling;
  throw Error(ErrorCode::InvalidArgument,
              "unknown allreduce algorithm '" + name + "': use auto, ring or recursive_doubling");
}

CommOptions CommOptions::from_env() {
  CommOptions o;
  o.timeout = env::timeout();
  o.algo = parse_allreduce_algo(env::get("WEFT_ALGO"));
  o.small_bytes = env::parse_bytes(env::get("WEFT_SMALL_BYTES"), "WEFT_SMALL_BYTES");
  o.segment_bytes = env::parse_bytes(env::get("WEFT_SEGMENT_BYTES"), "WEFT_SEGMENT_BYTES");
  if (o.segment_bytes < 64)
    throw Error(ErrorCode::InvalidArgument, "WEFT_SEGMENT_BYTES must be at least 64");
  return o;
}

struct Communicator::Impl {
  // Exactly one of the two runs the ops.
  std::unique_ptr<Transport> transport;  // weft's algorithms over it
  std::unique_ptr<NativeBackend> native;  // or the library's own collectives
  Context context;
  CommOptions options;
  Buffer scratch;  // the algorithms' work area (none for a native backend)
  std::shared_ptr<Executor> executor;
  uint64_t seq = 0;                             // collectives issued (caller thread)
  std::vector<uint64_t> send_seq, recv_seq;     // point-to-point messages per peer
  int splits = 0;
  std::atomic<bool> aborted{false};
  std::mutex abort_mu;
  std::string abort_reason;

  int rank() const { return native ? native->rank() : transport->rank(); }
  int size() const { return native ? native->size() : transport->size(); }

  std::string where(OpKind op) const {
    return "rank " + std::to_string(rank()) + ": " + op_kind_name(op);
  }
  // Native NCCL moves device memory; the other backends move host memory (nccl-ring stages it
  // through the GPU). CUDA tensors on tcp, shm and mpi need pinned staging, not written yet.
  void check_device(OpKind op, const Tensor& t) const {
    const bool device_backend = context.backend == "nccl";
    if (t.device().is_cpu() != device_backend) return;
    throw Error(ErrorCode::InvalidArgument,
                where(op) + " got a tensor on " + t.device().str() + " but backend " +
                    context.backend + " moves " + (device_backend ? "CUDA" : "host") +
                    " memory only; pass a " + (device_backend ? "cuda" : "cpu") + " tensor");
  }
  void check_same(OpKind op, const Tensor& in, const Tensor& out, size_t out_numel,
                  const char* what) const {
    check_device(op, in);
    check_device(op, out);
    if (in.dtype() != out.dtype() || out.numel() != out_numel)
      throw Error(ErrorCode::InvalidArgument,
                  where(op) + ": input is " + in.describe() + " and output is " + out.describe() +
                      "; " + what);
  }
  void check_rank(OpKind op, int r, const char* role) const {
    if (r < 0 || r >= size())
      throw Error(ErrorCode::InvalidArgument, where(op) + ": " + role + " " + std::to_string(r) +
                                                  " is not a rank of this group of " +
                                                  std::to_string(size()));
  }

  void throw_if_aborted(const Fingerprint& fp) {
    if (!aborted.load()) return;
    std::lock_guard lock(abort_mu);
    throw Error(ErrorCode::Aborted, "rank " + std::to_string(rank()) + ": " + fp.describe() +
                                        " issued after abort: " + abort_reason);
  }

  // An op of weft's algorithms over the transport; `body` takes the AlgoContext. Op lambdas
  // capture Spans, not Tensors: copying a Tensor copies its shape (an allocation).
  template <typename Body>
  Work submit(const Fingerprint& fp, Body body) {
    return executor->submit(fp, options.timeout, [this, fp, body](Deadline deadline) {
      throw_if_aborted(fp);
      try {
        body(AlgoContext{*transport, fp, deadline, options.segment_bytes, scratch.data(),
                         scratch.size()});
      } catch (const Error& e) {
        // Tell the peers why this rank is leaving the collective, so a rank waiting on us
        // fails at once naming the real cause (a dead rank two hops away, a mismatch).
        if (e.code() != ErrorCode::Aborted) transport->abort(e.what());
        throw;
      }
    });
  }

  // An op of the native backend; `body` takes (NativeBackend&, const NativeOp&). Collectives
  // first check that every rank issued the same one.
  template <typename Body>
  Work submit_native(const Fingerprint& fp, bool collective, Body body) {
    return executor->submit(fp, options.timeout, [this, fp, collective, body](Deadline deadline) {
      throw_if_aborted(fp);
      NativeOp op{fp, deadline};
      try {
        if (collective) native->check_agreement(op);
        body(*native, op);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::Aborted) native->abort(e.what());  // as in submit()
        throw;
      }
    });
  }

  Fingerprint next(OpKind op, DType dtype, size_t count, ReduceOp reduce = ReduceOp::sum,
                   int root = -1) {
    return Fingerprint{++seq, op, dtype, reduce, root, count};
  }
};

Communicator::Communicator(std::unique_ptr<Transport> transport, Context context,
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
}

Communicator::Communicator(std::unique_ptr<NativeBackend> native, Context context,
                           CommOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->native = std::move(native);
  impl_->context = std::move(context);
  impl_->options = options;
  impl_->send_seq.assign(impl_->size(), 0);
  impl_->recv_seq.assign(impl_->size(), 0);
  impl_->executor = Executor::create(impl_->rank());
}

Communicator::~Communicator() {
  impl_->executor->stop();  // before the transport and scratch the ops use go away
}

int Communicator::rank() const { return impl_->rank(); }
int Communicator::size() const { return impl_->size(); }
const char* Communicator::backend() const { return impl_->context.backend.c_str(); }

Work Communicator::allreduce(const Tensor& data, ReduceOp op) { return allreduce(data, data, op); }

Work Communicator::allreduce(const Tensor& in_tensor, const Tensor& out_tensor, ReduceOp op) {
  Impl& m = *impl_;
  m.check_same(OpKind::allreduce, in_tensor, out_tensor, in_tensor.numel(),
               "they must have the same dtype and size");
  Span in(in_tensor), out(out_tensor);
  Fingerprint fp = m.next(OpKind::allreduce, in.dtype, in.numel, op);
  if (m.native)
    return m.submit_native(fp, true, [in, out, op](NativeBackend& b, const NativeOp& o) {
      b.allreduce(in.data, out.data, in.numel, in.dtype, op, o);
    });
  return m.submit(fp, [&m, in, out, op](const AlgoContext& ctx) {
    if (out.data != in.data && in.nbytes()) std::memcpy(out.data, in.data, in.nbytes());
    bool small = in.nbytes() <= m.options.small_bytes;
    bool doubling = m.options.algo == AllreduceAlgo::recursive_doubling ||
                    (m.options.algo == AllreduceAlgo::automatic && small);
    if (doubling && in.nbytes() <= ctx.scratch_bytes)
      allreduce_recursive_doubling(ctx, out.data, out.numel, out.dtype, op);
    else
      allreduce_ring(ctx, out.data, out.numel, out.dtype, op);
  });
}

Work Communicator::broadcast(const Tensor& tensor, int root) {
  Impl& m = *impl_;
  m.check_device(OpKind::broadcast, tensor);
  m.check_rank(OpKind::broadcast, root, "root");
  Span data(tensor);
  Fingerprint fp = m.next(OpKind::broadcast, data.dtype, data.numel, ReduceOp::sum, root);
  if (m.native)
    return m.submit_native(fp, true, [data, root](NativeBackend& b, const NativeOp& o) {
      b.broadcast(data.data, data.numel, data.dtype, root, o);
    });
  return m.submit(fp, [&m, data, root](const AlgoContext& ctx) {
    comm::broadcast(ctx, data.data, data.nbytes(), root, m.options.small_bytes);
  });
}

Work Communicator::reduce(const Tensor& in_tensor, const Tensor& out_tensor, int root,
                          ReduceOp op) {
  Impl& m = *impl_;
  m.check_rank(OpKind::reduce, root, "root");
  if (rank() == root)
    m.check_same(OpKind::reduce, in_tensor, out_tensor, in_tensor.numel(),
                 "on the root they must match");
  else
    m.check_device(OpKind::reduce, in_tensor);
  Span in(in_tensor);
  void* out = out_tensor.data();
  Fingerprint fp = m.next(OpKind::reduce, in.dtype, in.numel, op, root);
  if (m.native)
    return m.submit_native(fp, true, [in, out, root, op](NativeBackend& b, const NativeOp& o) {
      b.reduce(in.data, out, in.numel, in.dtype, op, root, o);
    });
  return m.submit(fp, [in, out, root, op](const AlgoContext& ctx) {
    comm::reduce(ctx, in.data, out, in.numel, in.dtype, op, root);
  });
}

Work Communicator::allgather(const Tensor& in_tensor, const Tensor& out_tensor) {
  Impl& m = *impl_;
  m.check_same(OpKind::allgather, in_tensor, out_tensor, in_tensor.numel() * size(),
               "the output must hold size() x the input's elements");
  Span in(in_tensor), out(out_tensor);
  Fingerprint fp = m.next(OpKind::allgather, in.dtype, in.numel);
  if (m.native)
    return m.submit_native(fp, true, [in, out](NativeBackend& b, const NativeOp& o) {
      b.allgather(in.data, out.data, in.numel, in.dtype, o);
    });
  return m.submit(fp, [in, out, r = rank()](const AlgoContext& ctx) {
    char* mine = static_cast<char*>(out.data) + static_cast<size_t>(r) * in.nbytes();
    if (mine != in.data && in.nbytes()) std::memmove(mine, in.data, in.nbytes());
    allgather_ring(ctx, out.data, in.numel, in.dtype);
  });
}

Work Communicator::reduce_scatter(const Tensor& in_tensor, const Tensor& out_tensor,
                                  ReduceOp op) {
  Impl& m = *impl_;
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
    return m.submit_native(fp, true, [in, out, op](NativeBackend& b, const NativeOp& o) {
      b.reduce_scatter(in.data, out.data, out.numel, in.dtype, op, o);
    });
  return m.submit(fp, [in, out, op](const AlgoContext& ctx) {
    // The ring reduces partial sums in place, so work on the input (documented: clobbered).
    reduce_scatter_ring(ctx, in.data, out.data, out.numel, in.dtype, op);
  });
}

Work Communicator::alltoall(const Tensor& in_tensor, const Tensor& out_tensor) {
  Impl& m = *impl_;
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
    return m.submit_native(fp, true, [in, out, n = size()](NativeBackend& b, const NativeOp& o) {
      b.alltoall(in.data, out.data, in.numel / n, in.dtype, o);
    });
  return m.submit(fp, [in, out, n = size()](const AlgoContext& ctx) {
    alltoall_pairwise(ctx, in.data, out.data, in.nbytes() / n);
  });
}

Work Communicator::send(const Tensor& tensor, int peer) {
  Impl& m = *impl_;
  m.check_device(OpKind::send, tensor);
  m.check_rank(OpKind::send, peer, "peer");
  Span data(tensor);
  Fingerprint fp{++m.send_seq[peer], OpKind::send, data.dtype, ReduceOp::sum, peer, data.numel};
  if (m.native)
    return m.submit_native(fp, false, [data, peer](NativeBackend& b, const NativeOp& o) {
      b.send(data.data, data.nbytes(), peer, o);
    });
  return m.submit(fp, [data, peer](const AlgoContext& ctx) {
    send_recv(ctx, peer, data.data, data.nbytes(), -1, nullptr, 0);
  });
}

Work Communicator::recv(const Tensor& tensor, int peer) {
  Impl& m = *impl_;
  m.check_device(OpKind::recv, tensor);
  m.check_rank(OpKind::recv, peer, "peer");
  Span data(tensor);
  Fingerprint fp{++m.recv_seq[peer], OpKind::recv, data.dtype, ReduceOp::sum, peer, data.numel};
  if (m.native)
    return m.submit_native(fp, false, [data, peer](NativeBackend& b, const NativeOp& o) {
      b.recv(data.data, data.nbytes(), peer, o);
    });
  return m.submit(fp, [data, peer](const AlgoContext& ctx) {
    send_recv(ctx, -1, nullptr, 0, peer, data.data, data.nbytes());
  });
}

Work Communicator::barrier() {
  Impl& m = *impl_;
  Fingerprint fp = m.next(OpKind::barrier, DType::u8, 1, ReduceOp::max);
  // Natively the agreement check is the barrier: no rank learns every rank's fingerprint before
  // every rank has sent it.
  if (m.native) return m.submit_native(fp, true, [](NativeBackend&, const NativeOp&) {});
  return m.submit(fp, [](const AlgoContext& ctx) {
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
    m.submit_native(fp, true, [](NativeBackend&, const NativeOp&) {}).wait();
    int index = m.splits++;
    auto child = m.native->split(color, key, deadline_after(m.options.timeout));
    if (!child) return nullptr;
    Context context = m.context;
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
  int new_rank = static_cast<int>(
      std::find(members.begin(), members.end(), std::make_pair(key, rank())) - members.begin());

  Context child = m.context;
  child.group_tag = m.context.group_tag + ".s" + std::to_string(index) + "c" + std::to_string(color);
  // Transports that meet through the store get the group's own corner of it (mpi needs none).
  auto store = m.context.store ? std::make_shared<PrefixStore>(child.group_tag, m.context.store)
                               : nullptr;
  TransportSetup setup;
  setup.store = store.get();
  setup.rank = new_rank;
  setup.size = static_cast<int>(members.size());
  setup.job_id = m.context.job_id;
  setup.token = m.context.token;
  setup.group_tag = child.group_tag;
  setup.host = m.context.host;
  setup.deadline = deadline_after(m.options.timeout);
  setup.parent = m.transport.get();
  for (const auto& member : members) setup.parent_ranks.push_back(member.second);
  auto transport = m.context.make_transport(setup);
  return std::make_unique<Communicator>(std::move(transport), std::move(child), m.options);
}

void Communicator::abort(const std::string& reason) {
  {
    std::lock_guard lock(impl_->abort_mu);
    if (impl_->abort_reason.empty()) impl_->abort_reason = reason;
  }
  impl_->aborted.store(true);
  if (impl_->native)
    impl_->native->abort(reason);
  else
    impl_->transport->abort(reason);
}

}  // namespace weft::comm
