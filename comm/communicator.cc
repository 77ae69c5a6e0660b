#include "comm/communicator.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>

#include "comm/algorithms/algorithms.h"
#include "comm/backend_registry.h"
#include "comm/device_staging.h"
#include "comm/executor.h"
#include "comm/group_context.h"
#include "comm/op_span.h"
#include "runtime/buffer.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {
// One-shot allreduce sends n - 1 messages per rank (n^2 in all): above this many ranks the
// messages cost more than the waits recursive doubling would make.
constexpr int kOneShotRanks = 8;
}  // namespace

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
  if (o.segment_bytes < 64)
    throw Error(ErrorCode::InvalidArgument, "WEFT_SEGMENT_BYTES must be at least 64");
  return o;
}

struct Communicator::Impl {
  // Exactly one of the two runs the ops.
  std::unique_ptr<Transport> transport;  // weft's algorithms over it
  std::unique_ptr<NativeBackend> native;  // or the library's own collectives
  GroupContext context;
  CommOptions options;
  Buffer scratch;  // the algorithms' work area (none for a native backend)
  std::map<int, std::unique_ptr<DeviceStaging>> stagings;      // by CUDA device (staging_for)
  std::map<int, std::unique_ptr<DeviceBufferOps>> device_ops;  // by CUDA device (ops_for)
  std::shared_ptr<Executor> executor;
  uint64_t seq = 0;                             // collectives issued (caller thread)
  std::vector<uint64_t> send_seq, recv_seq;     // point-to-point messages per peer
  int splits = 0;
  std::unique_ptr<Communicator> device_route;  // made on the first op on a CUDA tensor
  bool device_route_made = false;
  bool record_op_times = false;
  std::atomic<bool> aborted{false};
  std::mutex abort_mu;
  std::string abort_reason;

  int rank() const { return native ? native->rank() : transport->rank(); }
  int size() const { return native ? native->size() : transport->size(); }

  std::string where(OpKind op) const {
    return "rank " + std::to_string(rank()) + ": " + op_kind_name(op);
  }
  // The communicator that runs an op on these tensors instead of this one: the device route,
  // when the context has one, a tensor is on a GPU, and every rank agreed to make it (at the
  // first collective on a GPU tensor: see GroupContext::make_device_route).
  Communicator* route(Communicator& self, const Tensor& a, const Tensor& b, bool collective) {
    if (!context.make_device_route || (a.device().is_cpu() && b.device().is_cpu())) return nullptr;
    if (!device_route_made) {
      if (!collective) return nullptr;
      int32_t here = context.device_route_here ? 1 : 0;
      self.allreduce(Tensor::flat(&here, DType::i32, 1), ReduceOp::min).wait();
      std::unique_ptr<Communicator> made;
      if (here == 1) {
        std::string why;
        try {
          made = context.make_device_route();
        } catch (const Error& e) {
          why = e.what();
        }
        // A route that some rank lacks would wait for it forever: use one only if every rank
        // made its own, else everyone stages.
        int32_t everyone = made ? 1 : 0;
        self.allreduce(Tensor::flat(&everyone, DType::i32, 1), ReduceOp::min).wait();
        if (everyone == 0) {
          if (made) made->abort("a peer could not set up its device route");
          made.reset();
          WEFT_WARN("CUDA tensors stay staged through host memory: "
                    << (why.empty() ? "another rank could not set up its device route" : why));
        }
      }
      if (made) made->record_op_times(record_op_times);
      // abort() may run on any thread: it reads device_route under abort_mu, and a route made
      // after an abort starts aborted.
      std::lock_guard lock(abort_mu);
      device_route_made = true;  // decided, alike on every rank
      device_route = std::move(made);
      if (device_route && aborted.load()) device_route->abort(abort_reason);
    }
    return device_route.get();
  }
  // Native NCCL moves device memory only, and the nccl transport takes it as it is too (and host
  // memory). The other backends move host memory, and copy CUDA tensors through it
  // (DeviceStaging).
  bool moves_device_memory() const {
    return native ? native->moves_device_memory() : transport->moves_device_memory();
  }
  void check_device(OpKind op, const Tensor& t) const {
    if (!native || !moves_device_memory() || !t.device().is_cpu()) return;
    throw Error(ErrorCode::InvalidArgument,
                where(op) + " got a tensor on " + t.device().str() + " but backend " +
                    native->name() +
                    " moves CUDA memory only; pass a cuda tensor, or use a host backend (" +
                    backend_names(BackendMemory::host) + ")");
  }
  // The staging for CUDA tensors on this device, made on first use (on the caller's thread;
  // ops use it on the executor's, one at a time). Null when neither span is on a GPU, or when
  // the backend takes device memory as it is.
  DeviceStaging* staging_for(const Span& a, const Span& b) {
    const int device = device_of(a, b);
    if (device < 0 || moves_device_memory()) return nullptr;
    std::unique_ptr<DeviceStaging>& s = stagings[device];
    if (!s) s = context.make_staging(device);
    return s.get();
  }
  // The algorithms' operations and work area for these spans: the GPU's, made on first use,
  // when the transport moves device memory and a span is on a GPU; else the host's.
  std::pair<BufferOps*, DeviceBufferOps*> ops_for(const Span& a, const Span& b) {
    const int device = device_of(a, b);
    if (device < 0 || !moves_device_memory()) return {&host_buffer_ops(), nullptr};
    std::unique_ptr<DeviceBufferOps>& o = device_ops[device];
    if (!o) o = context.make_device_ops(device, scratch.size());
    return {o.get(), o.get()};
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

  // An op of weft's algorithms over the transport: body(in, out, ctx) with `in` and `out` in
  // host memory (see run_on_host). Op lambdas capture Spans, not Tensors: copying a Tensor
  // copies its shape (an allocation).
  template <typename Body>
  Work submit(const Fingerprint& fp, Span in, Span out, Body body) {
    DeviceStaging* staging = staging_for(in, out);
    auto [ops, device] = ops_for(in, out);
    return submit_algo(fp, ops, device, [staging, in, out, body](const AlgoContext& ctx) {
      run_on_host(staging, in, out, ctx.deadline,
                  [&](Span hin, Span hout) { body(hin, hout, ctx); });
    });
  }

  // The core of submit(): body(ctx) on the executor, with `ops` on the buffers and the scratch
  // of `device` (GPU buffers) or the communicator's own (host buffers, device null).
  template <typename Body>
  Work submit_algo(const Fingerprint& fp, BufferOps* ops, DeviceBufferOps* device, Body body) {
    return executor->submit(fp, options.timeout, [this, fp, ops, device, body](LazyDeadline d) {
      throw_if_aborted(fp);
      try {
        if (device) device->set_deadline(d.get());  // its waits for the GPU end then
        void* work = device ? device->scratch() : scratch.data();
        size_t work_bytes = device ? device->scratch_bytes() : scratch.size();
        body(AlgoContext{*transport, *ops, fp, d, options.segment_bytes, work, work_bytes});
      } catch (const Error& e) {
        Error named = naming_first_loss(e);
        // Tell the peers why this rank is leaving the collective, so a rank waiting on us
        // fails at once naming the real cause (a dead rank two hops away, a mismatch).
        if (e.code() != ErrorCode::Aborted)
          transport->abort_with(code_for_peers(named.code()), named.what());
        throw named;
      }
    });
  }

  // The peer this rank saw go (or abort) may have stopped only because another rank died
  // first, during set-up (it stopped there while this rank got through): the job's death
  // notice names that one (see kRankLostKey). Asked only on the way out, so it costs an op
  // nothing.
  Error naming_first_loss(const Error& e) const {
    if (!context.store || (e.code() != ErrorCode::PeerLost && e.code() != ErrorCode::Aborted))
      return e;
    try {
      context.store->check_members();
    } catch (const Error& notice) {
      if (notice.code() != ErrorCode::PeerLost) return e;
      // Messages start with their code's name and ": ".
      std::string seen = e.what(), first = notice.what();
      seen.erase(0, std::string(error_code_name(e.code())).size() + 2);
      first.erase(0, std::string(error_code_name(notice.code())).size() + 2);
      if (seen.find(first) == std::string::npos) seen += "; the first rank the job lost: " + first;
      return Error(ErrorCode::PeerLost, seen);  // an abort it caused is a loss too
    }
    return e;
  }

  void allreduce_in_place(const AlgoContext& ctx, void* data, size_t count, DType dtype,
                          ReduceOp op) const {
    size_t bytes = count * dtype_size(dtype);
    bool one_shot = options.algo == AllreduceAlgo::one_shot ||
                    (options.algo == AllreduceAlgo::automatic && bytes <= options.one_shot_bytes);
    bool doubling = options.algo == AllreduceAlgo::recursive_doubling ||
                    (options.algo == AllreduceAlgo::automatic && bytes <= options.small_bytes);
    // One shot sends n - 1 messages per rank: worth it only while n is small (kOneShotRanks).
    if (one_shot && ctx.size() <= kOneShotRanks &&
        bytes * static_cast<size_t>(ctx.size()) <= ctx.scratch_bytes)
      allreduce_one_shot(ctx, data, count, dtype, op);
    else if (doubling && bytes <= ctx.scratch_bytes)
      allreduce_recursive_doubling(ctx, data, count, dtype, op);
    else
      allreduce_ring(ctx, data, count, dtype, op);
  }

  // Allreduce of GPU memory over a host backend, in chunks of options.staging_chunk_bytes
  // through the two host areas in turn: chunk k+1 is copied to the host while chunk k is
  // reduced. Every rank cuts the same chunks (the sizes agree), and every chunk's messages carry
  // the whole op's fingerprint, so a size mismatch still names both totals.
  Work submit_staged_allreduce(const Fingerprint& fp, Span in, Span out, ReduceOp op) {
    DeviceStaging* s = staging_for(in, out);
    return submit_algo(
        fp, &host_buffer_ops(), nullptr, [this, s, in, out, op](const AlgoContext& ctx) {
          const size_t esize = dtype_size(in.dtype);
          const size_t per = std::max<size_t>(1, options.staging_chunk_bytes / esize);
          const size_t chunks = std::max<size_t>(1, (in.numel + per - 1) / per);
          auto count_of = [&](size_t k) { return std::min(per, in.numel - k * per); };
          auto at = [&](const Span& span, size_t k) {
            return static_cast<std::byte*>(span.data) + k * per * esize;
          };
          const Deadline deadline = ctx.deadline.get();
          std::byte* area[2] = {s->host(0, count_of(0) * esize, deadline),
                                s->host(1, count_of(0) * esize, deadline)};
          s->to_host(area[0], at(in, 0), count_of(0) * esize);
          s->wait(deadline);
          for (size_t k = 0; k < chunks; k++) {
            if (k + 1 < chunks)
              s->to_host(area[(k + 1) % 2], at(in, k + 1), count_of(k + 1) * esize);
            allreduce_in_place(ctx, area[k % 2], count_of(k), in.dtype, op);
            s->to_device(at(out, k), area[k % 2], count_of(k) * esize);
            s->wait(deadline);
          }
        });
  }

  // An op of the native backend: body(in, out, backend, op) with host spans as in submit().
  // Collectives first check that every rank issued the same one.
  template <typename Body>
  Work submit_native(const Fingerprint& fp, bool collective, Span in, Span out, Body body) {
    DeviceStaging* staging = staging_for(in, out);
    return executor->submit(
        fp, options.timeout, [this, fp, collective, staging, in, out, body](LazyDeadline d) {
          throw_if_aborted(fp);
          NativeOp op{fp, d.get()};
          try {
            if (collective) native->check_agreement(op);
            if (!staging) return body(in, out, *native, op);  // host tensors, or nccl
            run_on_host(staging, in, out, d,
                        [&](Span hin, Span hout) { body(hin, hout, *native, op); });
          } catch (const Error& e) {
            // As in submit_algo().
            if (e.code() != ErrorCode::Aborted)
              native->abort_with(code_for_peers(e.code()), e.what());
            throw;
          }
        });
  }

  Fingerprint next(OpKind op, DType dtype, size_t count, ReduceOp reduce = ReduceOp::sum,
                   int root = -1) {
    return Fingerprint{++seq, op, dtype, reduce, root, count};
  }
};

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
}

Communicator::~Communicator() {
  impl_->executor->stop();  // before the transport and scratch the ops use go away
  // Then the transport, while the scratch lives: closing, MPI's sends of a failed op may read it.
  impl_->transport.reset();
  impl_->native.reset();
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
    return m.submit_native(fp, true, in, out,
                           [op](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.allreduce(in.data, out.data, in.numel, in.dtype, op, o);
                           });
  if (in.on_device() && out.on_device() && !m.moves_device_memory())
    return m.submit_staged_allreduce(fp, in, out, op);
  return m.submit(fp, in, out, [&m, op](Span in, Span out, const AlgoContext& ctx) {
    ctx.ops.copy(out.data, in.data, in.nbytes());
    m.allreduce_in_place(ctx, out.data, out.numel, out.dtype, op);
  });
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
    return m.submit_native(fp, true, in, out,
                           [root](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             Span d = in.data ? in : out;
                             b.broadcast(d.data, d.numel, d.dtype, root, o);
                           });
  return m.submit(fp, in, out, [&m, root](Span in, Span out, const AlgoContext& ctx) {
    Span d = in.data ? in : out;
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
    return m.submit_native(fp, true, in, out,
                           [root, op](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.reduce(in.data, out.data, in.numel, in.dtype, op, root, o);
                           });
  return m.submit(fp, in, out, [root, op](Span in, Span out, const AlgoContext& ctx) {
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
    return m.submit_native(fp, true, in, out,
                           [](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.allgather(in.data, out.data, in.numel, in.dtype, o);
                           });
  return m.submit(fp, in, out, [r = rank()](Span in, Span out, const AlgoContext& ctx) {
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
    return m.submit_native(fp, true, in, out,
                           [op](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.reduce_scatter(in.data, out.data, out.numel, in.dtype, op, o);
                           });
  return m.submit(fp, in, out, [op](Span in, Span out, const AlgoContext& ctx) {
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
    return m.submit_native(fp, true, in, out,
                           [n = size()](Span in, Span out, NativeBackend& b, const NativeOp& o) {
                             b.alltoall(in.data, out.data, in.numel / n, in.dtype, o);
                           });
  return m.submit(fp, in, out, [n = size()](Span in, Span out, const AlgoContext& ctx) {
    alltoall_pairwise(ctx, in.data, out.data, in.nbytes() / n);
  });
}

Work Communicator::send(const Tensor& tensor, int peer) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, tensor, tensor, false)) return d->send(tensor, peer);
  m.check_device(OpKind::send, tensor);
  m.check_rank(OpKind::send, peer, "peer");
  Span data(tensor);
  Fingerprint fp{++m.send_seq[peer], OpKind::send, data.dtype, ReduceOp::sum, peer, data.numel};
  if (m.native)
    return m.submit_native(fp, false, data, Span(),
                           [peer](Span in, Span, NativeBackend& b, const NativeOp& o) {
                             b.send(in.data, in.nbytes(), peer, o);
                           });
  return m.submit(fp, data, Span(), [peer](Span in, Span, const AlgoContext& ctx) {
    send_recv(ctx, peer, in.data, in.nbytes(), -1, nullptr, 0);
  });
}

Work Communicator::recv(const Tensor& tensor, int peer) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, tensor, tensor, false)) return d->recv(tensor, peer);
  m.check_device(OpKind::recv, tensor);
  m.check_rank(OpKind::recv, peer, "peer");
  Span data(tensor);
  Fingerprint fp{++m.recv_seq[peer], OpKind::recv, data.dtype, ReduceOp::sum, peer, data.numel};
  if (m.native)
    return m.submit_native(fp, false, Span(), data,
                           [peer](Span, Span out, NativeBackend& b, const NativeOp& o) {
                             b.recv(out.data, out.nbytes(), peer, o);
                           });
  return m.submit(fp, Span(), data, [peer](Span, Span out, const AlgoContext& ctx) {
    send_recv(ctx, -1, nullptr, 0, peer, out.data, out.nbytes());
  });
}

Work Communicator::barrier() {
  Impl& m = *impl_;
  Fingerprint fp = m.next(OpKind::barrier, DType::u8, 1, ReduceOp::max);
  // Natively the agreement check is the barrier: no rank learns every rank's fingerprint before
  // every rank has sent it.
  if (m.native)
    return m.submit_native(fp, true, Span(), Span(),
                           [](Span, Span, NativeBackend&, const NativeOp&) {});
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
    m.submit_native(fp, true, Span(), Span(), [](Span, Span, NativeBackend&, const NativeOp&) {
     }).wait();
    int index = m.splits++;
    auto child = m.native->split(color, key, deadline_after(m.options.timeout));
    if (!child) return nullptr;
    GroupContext context = m.context;
    context.make_device_route = nullptr;
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

  GroupContext child = m.context;
  child.make_device_route = nullptr;
  child.group_tag = m.context.group_tag + ".s" + std::to_string(index) + "c" + std::to_string(color);
  // Transports that meet through the store get the group's own corner of it (mpi needs none).
  auto store = m.context.store ? std::make_shared<PrefixStore>(child.group_tag, m.context.store)
                               : nullptr;
  TransportSetup setup;
  setup.store = store.get();
  setup.shared_store = store;
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

void Communicator::record_op_times(bool on) {
  impl_->record_op_times = on;
  impl_->executor->record_times(on);
  if (impl_->device_route) impl_->device_route->record_op_times(on);
}

void Communicator::abort(const std::string& reason) {
  {
    std::lock_guard lock(impl_->abort_mu);
    if (impl_->abort_reason.empty()) impl_->abort_reason = reason;
    impl_->aborted.store(true);
    if (impl_->device_route) impl_->device_route->abort(reason);
  }
  if (impl_->native)
    impl_->native->abort(reason);
  else
    impl_->transport->abort(reason);
}

}  // namespace weft::comm
