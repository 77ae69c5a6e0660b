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
  }
  return "unknown-op";
}

std::string Fingerprint::describe() const {
  std::string s = std::string(op_kind_name(op)) + " #" + std::to_string(seq) + " (" +
                  dtype_name(dtype) + " x " + std::to_string(count);
  if (op == OpKind::allreduce || op == OpKind::reduce || op == OpKind::reduce_scatter)
    s += std::string(", ") + reduce_op_name(reduce);
  if (root >= 0) s += (op == OpKind::send || op == OpKind::recv ? ", peer " : ", root ") +
                      std::to_string(root);
  return s + ")";
}

}  // namespace weft::comm
