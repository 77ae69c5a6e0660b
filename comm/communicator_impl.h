#pragma once
// Communicator::Impl: a communicator's state and the machinery every op goes through (argument
// checks, sequence numbers and fingerprints, the device route and staging, submission to the
// executor over a transport or a native backend). Private to the communicator's sources:
// communicator.cc (set-up, collectives, split, abort) and communicator_p2p.cc (point to point).
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "comm/algorithms/algorithms.h"
#include "comm/backend_registry.h"
#include "comm/communicator.h"
#include "comm/device_staging.h"
#include "comm/direct_access.h"
#include "comm/executor.h"
#include "comm/group_context.h"
#include "comm/hierarchy.h"
#include "comm/op_span.h"
#include "runtime/buffer.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {

struct Communicator::Impl {
  // How long a rank that saw a peer die waits for the job's death notice (naming_first_loss).
  static constexpr auto kDeathNoticePatience = std::chrono::milliseconds(300);

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
  uint64_t batches = 0;                         // batch_p2p ops issued (for messages only)
  int splits = 0;
  std::unique_ptr<Communicator> device_route;  // made on the first op on a CUDA tensor
  std::unique_ptr<Hierarchy> hierarchy;         // across nodes (meet_nodes), or null
  // Set while this is a hierarchy's node or leaders' group running a phase of its parent's op
  // (Hierarchy::allreduce, on the one thread that issues this group's ops): the phase carries
  // the parent's fingerprint (next()) and ends by the parent's deadline (submit_algo()).
  const Fingerprint* part_of = nullptr;
  Deadline part_of_deadline{};
  bool device_route_made = false;
  bool record_op_times = false;
  std::atomic<uint64_t> direct_ops{0};  // ops that ran on registered memory
  std::atomic<bool> aborted{false};
  std::mutex abort_mu;
  std::string abort_reason;
  // The store's word that the job lost a rank aborts this communicator (see Store::watch_losses).
  std::shared_ptr<void> loss_watch;

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
          made = context.make_device_route({rank(), size(), context.group_tag});
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
  // Inline with the message apart: every op checks its tensors, and a call cost tiny ops.
  void check_device(OpKind op, const Tensor& t) const {
    if (native && moves_device_memory() && t.device().is_cpu()) refuse_host_tensor(op, t);
  }
  [[noreturn]] void refuse_host_tensor(OpKind op, const Tensor& t) const;
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
    // Host spans, as nearly every op has: no staging to look up or run through (those steps
    // cost an 8-byte allreduce a few percent).
    if (!in.on_device() && !out.on_device())
      return submit_algo(fp, &host_buffer_ops(), nullptr,
                         [in, out, body](const AlgoContext& ctx) { body(in, out, ctx); });
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
    // A phase starts at once (its group runs nothing else): what is left of the parent's time.
    const auto timeout =
        part_of ? std::max(std::chrono::milliseconds(1),
                           std::chrono::ceil<std::chrono::milliseconds>(part_of_deadline -
                                                                        Clock::now()))
                : options.timeout;
    return executor->submit(fp, timeout, [this, fp, ops, device,
                                                  body = std::move(body)](LazyDeadline d) {
      try {
        throw_if_aborted(fp);  // in the try: an abort the job's loss caused is a PeerLost
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
        transport->quiesce();  // the caller may free the op's buffers once it hears
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
    // A peer's death seen here (or by the peer that aborted us) may reach the coordinator a
    // moment later, as the dead rank's beat stream closes there: give the notice that moment.
    const bool a_death = !aborted.load() && std::string_view(e.what()).find("PeerLost") !=
                                                std::string_view::npos;
    const Deadline patience = Clock::now() + (a_death ? kDeathNoticePatience : Clock::duration{});
    try {
      do {
        context.store->check_members();
        if (Clock::now() < patience) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      } while (Clock::now() < patience);
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
    if (hierarchy) return hierarchy->allreduce(ctx.fp, ctx.deadline.get(), data, count, dtype, op);
    size_t bytes = count * dtype_size(dtype);
    bool one_shot = options.algo == AllreduceAlgo::one_shot ||
                    (options.algo == AllreduceAlgo::automatic && bytes <= options.one_shot_bytes);
    bool doubling = options.algo == AllreduceAlgo::recursive_doubling ||
                    (options.algo == AllreduceAlgo::automatic && bytes <= options.small_bytes);
    // One shot sends n - 1 messages per rank (n^2 in all): above kOneShotMaxRanks ranks the
    // messages cost more than the waits recursive doubling would make.
    if (one_shot && ctx.size() <= kOneShotMaxRanks &&
        bytes * static_cast<size_t>(ctx.size()) <= ctx.scratch_bytes)
      allreduce_one_shot(ctx, data, count, dtype, op);
    else if (doubling && bytes <= ctx.scratch_bytes)
      allreduce_recursive_doubling(ctx, data, count, dtype, op);
    else
      allreduce_ring(ctx, data, count, dtype, op);
  }

  // The direct path (comm/direct_access.h) for an op of `bytes` (its size, the same on every
  // rank whose fingerprint agrees): the transport's direct access when it has one, the choice is
  // automatic and the op is at least direct_bytes; null otherwise. Every rank decides alike,
  // wherever its tensors live; whether every rank's buffer is registered is agreed in the op
  // (DirectAccess::run).
  DirectAccess* direct_for(size_t bytes) const {
    if (!transport || options.algo != AllreduceAlgo::automatic || bytes < options.direct_bytes)
      return nullptr;
    return transport->direct_access();
  }
  // This rank's buffer for a direct op, found at submission: where `source` lives in registered
  // memory, holding its segment so that a buffer dropped while the op waits stays mapped until
  // the op ends; empty when it is not registered (plain memory, a GPU's).
  struct DirectSource {
    std::shared_ptr<RegisteredSegment> segment;
    size_t offset = 0;
    DirectBuffer buffer() const { return DirectBuffer{segment.get(), offset}; }
  };
  static DirectSource direct_source(DirectAccess* direct, const Span& source) {
    DirectSource s;
    if (!direct || !source.data || source.on_device()) return s;
    s.segment = direct->find(source.data, source.nbytes());
    if (s.segment)
      s.offset = static_cast<size_t>(static_cast<std::byte*>(source.data) - s.segment->data());
    return s;
  }
  // In the op: `work` on every rank's buffer in place when `direct` and every rank's is
  // registered (true, counted in direct_ops); false when the transport's algorithm must run. A
  // rank whose buffer is not registered (or lives on a GPU) still takes part, declining for all.
  bool run_direct(DirectAccess* direct, const AlgoContext& ctx, const DirectSource& source,
                  void* data, size_t bytes, const DirectWork& work) {
    if (!direct || !direct->run(ctx.fp, source.buffer(), data, bytes, work, ctx.deadline))
      return false;
    direct_ops.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Allreduce of GPU memory over a host backend, in chunks of options.staging_chunk_bytes
  // through the two host areas in turn: chunk k+1 is copied to the host while chunk k is
  // reduced. Every rank cuts the same chunks (the sizes agree), and every chunk's messages carry
  // the whole op's fingerprint, so a size mismatch still names both totals.
  // `direct`: take part in the direct path's agreement first, declining (run_direct).
  Work submit_staged_allreduce(const Fingerprint& fp, Span in, Span out, ReduceOp op,
                               DirectAccess* direct) {
    DeviceStaging* s = staging_for(in, out);
    return submit_algo(
        fp, &host_buffer_ops(), nullptr, [this, s, in, out, op, direct](const AlgoContext& ctx) {
          run_direct(direct, ctx, DirectSource{}, nullptr, in.nbytes(), {});
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
  // Each collective of the backend checks itself that every rank issued the same one
  // (native_backend.h); barrier and split are that check alone.
  template <typename Body>
  Work submit_native(const Fingerprint& fp, Span in, Span out, Body body) {
    DeviceStaging* staging = staging_for(in, out);
    return executor->submit(
        fp, options.timeout, [this, fp, staging, in, out, body = std::move(body)](LazyDeadline d) {
          throw_if_aborted(fp);
          NativeOp op{fp, d.get()};
          try {
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

  // A communicator over `members` (ranks of this group, in the new group's rank order), its
  // transport made by `make`, meeting under `context.group_tag`'s corner of the store: split()'s
  // sub-groups and the hierarchy's node and leaders. Collective over `members`.
  std::unique_ptr<Communicator> child(GroupContext context, const std::vector<int>& members,
                                      const MakeTransport& make) {
    // Transports that meet through the store get the group's own corner of it (mpi needs none).
    auto store = context.store ? std::make_shared<PrefixStore>(context.group_tag, context.store)
                               : nullptr;
    TransportSetup setup;
    setup.store = store.get();
    setup.shared_store = store;
    setup.rank = static_cast<int>(std::find(members.begin(), members.end(), rank()) -
                                  members.begin());
    setup.size = static_cast<int>(members.size());
    setup.job_id = context.job_id;
    setup.token = context.token;
    setup.group_tag = context.group_tag;
    setup.host = context.host;
    setup.deadline = deadline_after(options.timeout);
    setup.parent = transport.get();
    setup.parent_ranks = members;
    auto made = make(setup);
    return std::make_unique<Communicator>(std::move(made), std::move(context), options);
  }

  // A phase of a parent's op (part_of) carries the parent's dtype, reduce op (avg, where the
  // phase sums) and whole count, so that ranks whose parent ops differ there fail in the phase,
  // naming both, however the phase cut or rewrote the op. Its own sequence number stays: the
  // direct path counts its ops by it.
  Fingerprint next(OpKind op, DType dtype, size_t count, ReduceOp reduce = ReduceOp::sum,
                   int root = -1) {
    Fingerprint fp{++seq, op, dtype, reduce, root, count};
    if (part_of) {
      fp.dtype = part_of->dtype;
      fp.reduce = part_of->reduce;
      fp.count = part_of->count;
    }
    return fp;
  }
};

}  // namespace weft::comm
