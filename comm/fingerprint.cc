#include "comm/fingerprint.h"

namespace weft::comm {

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::allreduce: return "allreduce";
    case OpKind::broadcast: return "broadcast";
    case OpKind::reduce: return "reduce";
    case OpKind::allgather: return "allgather";
    case OpKind::reduce_scatter: return "reduce_scatter";
    case OpKind::alltoall: return "alltoall";
    case OpKind::send: return "send";
    case OpKind::recv: return "recv";
    case OpKind::barrier: return "barrier";
    case OpKind::split: return "split";
    case OpKind::setup: return "setup";
    case OpKind::batch_p2p: return "batch_p2p";
  }
  return "unknown-op";
}

std::string Fingerprint::describe() const {
  if (op == OpKind::batch_p2p)
    return "batch_p2p #" + std::to_string(seq) + " (" + std::to_string(count) + " messages)";
  if (exchange)
    return std::string(op_kind_name(op)) + " #" + std::to_string(seq) +
           " (its fingerprint exchange)";
  std::string s = std::string(op_kind_name(op)) + " #" + std::to_string(seq) + " (" +
                  dtype_name(dtype) + " x " + std::to_string(count);
  if (op == OpKind::allreduce || op == OpKind::reduce || op == OpKind::reduce_scatter)
    s += std::string(", ") + reduce_op_name(reduce);
  if (root >= 0) s += (op == OpKind::send || op == OpKind::recv ? ", peer " : ", root ") +
                      std::to_string(root);
  return s + ")";
}

WireFingerprint encode(const Fingerprint& fp) {
  return {fp.seq,
          static_cast<uint64_t>(fp.op) | uint64_t{static_cast<uint8_t>(fp.dtype)} << 32 |
              uint64_t{static_cast<uint8_t>(fp.reduce)} << 40 | uint64_t{fp.exchange} << 48 |
              uint64_t{fp.stalled} << 49,
          static_cast<uint64_t>(static_cast<int64_t>(fp.root)), fp.count};
}

Fingerprint decode(const WireFingerprint& w) {
  Fingerprint fp;
  fp.seq = w.seq;
  fp.op = static_cast<OpKind>(w.kinds & 0xffffffffu);
  fp.dtype = static_cast<DType>((w.kinds >> 32) & 0xff);
  fp.reduce = static_cast<ReduceOp>((w.kinds >> 40) & 0xff);
  fp.exchange = ((w.kinds >> 48) & 1) != 0;
  fp.stalled = ((w.kinds >> 49) & 1) != 0;
  fp.root = static_cast<int32_t>(static_cast<int64_t>(w.root));
  fp.count = w.count;
  return fp;
}

}  // namespace weft::comm
