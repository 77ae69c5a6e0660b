// Recursive doubling: log2(n) exchanges of the whole buffer, for small messages where latency
// dominates. Ranks beyond the largest power of two p first fold their data into rank r-p and
// get the result back at the end. Every rank combines in the same order (lower rank first), so
// all ranks end with bit-identical results.

#include "comm/algorithms/algorithms.h"
#include "runtime/error.h"

namespace weft::comm {

void allreduce_recursive_doubling(const AlgoContext& ctx, void* data, size_t count, DType dtype,
                                  ReduceOp op) {
  int n = ctx.size(), r = ctx.rank();
  if (n == 1) return;
  size_t bytes = count * dtype_size(dtype);
  if (bytes > ctx.scratch_bytes)
    throw Error(ErrorCode::Internal, "recursive doubling needs " + std::to_string(bytes) +
                                         " bytes of scratch, has " +
                                         std::to_string(ctx.scratch_bytes));
  void* tmp = ctx.scratch;
  int p = 1;
  while (p * 2 <= n) p *= 2;
  int extra = n - p;

  if (r >= p) {  // fold in, then wait for the result
    send_recv(ctx, r - p, data, bytes, -1, nullptr, 0);
    send_recv(ctx, -1, nullptr, 0, r - p, data, bytes);
    return;
  }
  if (r < extra) {
    send_recv(ctx, -1, nullptr, 0, r + p, tmp, bytes);
    ctx.ops.reduce(data, data, tmp, count, dtype, op);
  }
  for (int mask = 1; mask < p; mask <<= 1) {
    int partner = r ^ mask;
    send_recv(ctx, partner, data, bytes, partner, tmp, bytes);
    if (r < partner) ctx.ops.reduce(data, data, tmp, count, dtype, op);
    else ctx.ops.reduce(data, tmp, data, count, dtype, op);
  }
  if (op == ReduceOp::avg) ctx.ops.scale_down(data, count, dtype, n);
  if (r < extra) send_recv(ctx, r + p, data, bytes, -1, nullptr, 0);
}

}  // namespace weft::comm
