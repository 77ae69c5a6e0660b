// Communicator's point-to-point ops: send, recv, and batch_p2p (several sends and receives
// posted together, completing when all have), with send_recv as its two-message case.
//
// Every message carries a fingerprint numbered per peer and direction (send_seq, recv_seq), so
// the k-th message this rank sends to p pairs with the k-th p receives from this rank, whether
// either side used send/recv or a batch; a receiver whose dtype or count differs fails with
// InvalidArgument naming both.
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/communicator_impl.h"
#include "runtime/error.h"

namespace weft::comm {
namespace {

// What a batch_p2p op keeps: its messages, and the staging of a host backend given CUDA tensors.
struct Batch {
  DeviceStaging* staging;
  std::vector<NativeMessage> messages;

  // Runs fn(messages) with every message's buffer in host memory: without a staging as they
  // are; with one, what is sent is copied to staging area 0 before and what is received lands
  // in area 1 and is copied back after (run_on_host for a batch). Copies are waited for until
  // `deadline`.
  template <typename Fn>
  void run(Deadline deadline, Fn&& fn) const;
};

template <typename Fn>
void Batch::run(Deadline deadline, Fn&& fn) const {
  if (!staging) return fn(std::span<const NativeMessage>(messages));
  std::vector<NativeMessage> host(messages.begin(), messages.end());
  size_t total[2] = {0, 0};  // bytes sent, bytes received
  for (const NativeMessage& m : host) total[m.is_send ? 0 : 1] += m.bytes;
  std::byte* area[2] = {staging->host(0, total[0], deadline), staging->host(1, total[1], deadline)};
  size_t at[2] = {0, 0};
  for (NativeMessage& m : host) {
    const int a = m.is_send ? 0 : 1;
    std::byte* copy = area[a] + at[a];
    at[a] += m.bytes;
    if (m.is_send && m.bytes) staging->to_host(copy, m.data, m.bytes);
    m.data = copy;
  }
  staging->wait(deadline);
  fn(std::span<const NativeMessage>(host));
  for (size_t i = 0; i < host.size(); i++)
    if (!host[i].is_send && host[i].bytes)
      staging->to_device(messages[i].data, static_cast<std::byte*>(host[i].data), host[i].bytes);
  staging->wait(deadline);
}

}  // namespace

Work Communicator::send(const Tensor& tensor, int peer) {
  Impl& m = *impl_;
  if (Communicator* d = m.route(*this, tensor, tensor, false)) return d->send(tensor, peer);
  m.check_device(OpKind::send, tensor);
  m.check_rank(OpKind::send, peer, "peer");
  Span data(tensor);
  Fingerprint fp{++m.send_seq[peer], OpKind::send, data.dtype, ReduceOp::sum, peer, data.numel};
  if (m.native)
    return m.submit_native(fp, data, Span(),
                           [peer](Span in, Span, NativeBackend& b, const NativeOp& o) {
                             b.send(in.data, in.nbytes(), peer, o);
                           });
  return m.submit(fp, data, Span(), [peer](Span in, Span, const AlgoContext& ctx) {
    comm::send_recv(ctx, peer, in.data, in.nbytes(), -1, nullptr, 0);
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
    return m.submit_native(fp, Span(), data,
                           [peer](Span, Span out, NativeBackend& b, const NativeOp& o) {
                             b.recv(out.data, out.nbytes(), peer, o);
                           });
  return m.submit(fp, Span(), data, [peer](Span, Span out, const AlgoContext& ctx) {
    comm::send_recv(ctx, -1, nullptr, 0, peer, out.data, out.nbytes());
  });
}

Work Communicator::batch_p2p(std::span<const P2P> ops) {
  Impl& m = *impl_;
  // Checked whole before any sequence number moves, so a refused batch leaves none behind.
  size_t sends = 0;
  for (size_t i = 0; i < ops.size(); i++) {
    const P2P& p = ops[i];
    const OpKind kind = p.kind == P2P::send ? OpKind::send : OpKind::recv;
    m.check_device(kind, p.data);
    m.check_rank(kind, p.peer, "peer");
    sends += p.kind == P2P::send;
    if (p.data.device() != ops[0].data.device())
      throw Error(ErrorCode::InvalidArgument,
                  "rank " + std::to_string(rank()) + ": batch_p2p message " + std::to_string(i) +
                      " is on " + p.data.device().str() + " but message 0 on " +
                      ops[0].data.device().str() +
                      "; every message of a batch must be on one device: issue one batch per "
                      "device");
  }
  if (sends > kMaxExchange || ops.size() - sends > kMaxExchange)
    throw Error(ErrorCode::InvalidArgument,
                "rank " + std::to_string(rank()) + ": batch_p2p of " + std::to_string(sends) +
                    " sends and " + std::to_string(ops.size() - sends) +
                    " receives; a batch takes at most " + std::to_string(kMaxExchange) +
                    " each way: split it into several batches");
  if (!ops.empty())
    if (Communicator* d = m.route(*this, ops[0].data, ops[0].data, false)) return d->batch_p2p(ops);

  std::vector<NativeMessage> messages;
  messages.reserve(ops.size());
  for (const P2P& p : ops) {
    const bool is_send = p.kind == P2P::send;
    Span s(p.data);
    uint64_t seq = ++(is_send ? m.send_seq : m.recv_seq)[p.peer];
    messages.push_back({is_send, s.data, s.nbytes(), p.peer,
                        Fingerprint{seq, is_send ? OpKind::send : OpKind::recv, s.dtype,
                                    ReduceOp::sum, p.peer, s.numel}});
  }
  Fingerprint fp{++m.batches, OpKind::batch_p2p, DType::u8, ReduceOp::sum, -1, ops.size()};
  Span first = ops.empty() ? Span() : Span(ops[0].data);
  // On the heap, behind one pointer: an op lambda holds at most OpBody::kCapacity bytes.
  auto batch = std::make_unique<Batch>(Batch{m.staging_for(first, first), std::move(messages)});
  if (m.native)
    return m.submit_native(
        fp, Span(), Span(),
        [batch = std::move(batch)](Span, Span, NativeBackend& b, const NativeOp& o) {
          if (batch->messages.empty()) return;
          batch->run(o.deadline,
                     [&](std::span<const NativeMessage> host) { b.batch_p2p(host, o); });
        });
  auto [buffer_ops, device_ops] = m.ops_for(first, first);
  return m.submit_algo(fp, buffer_ops, device_ops,
                       [batch = std::move(batch)](const AlgoContext& ctx) {
                         batch->run(ctx.deadline.get(), [&](std::span<const NativeMessage> host) {
                           std::vector<Outgoing> out;
                           std::vector<Incoming> in;
                           for (const NativeMessage& msg : host) {
                             if (msg.is_send)
                               out.push_back({msg.peer, msg.data, msg.bytes, &msg.fp});
                             else
                               in.push_back({msg.peer, msg.data, msg.bytes, &msg.fp});
                           }
                           exchange(ctx, out, in);
                         });
                       });
}

Work Communicator::send_recv(const Tensor& send, int to, const Tensor& recv, int from) {
  const P2P ops[] = {{P2P::send, send, to}, {P2P::recv, recv, from}};
  return batch_p2p(ops);
}

}  // namespace weft::comm
