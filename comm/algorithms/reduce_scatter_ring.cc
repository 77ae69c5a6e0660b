// Ring reduce-scatter: rank r ends with the reduction of block r. Blocks are walked in slices
// of one segment per block, so each step moves segment-sized messages that stay in cache
// between being received, reduced and forwarded.
#include <algorithm>

#include "comm/algorithms/ring_steps.h"

namespace weft::comm {

void reduce_scatter_ring(const AlgoContext& ctx, void* in, void* out, size_t count, DType dtype,
                         ReduceOp op) {
  int n = ctx.size();
  size_t esz = dtype_size(dtype);
  char* base = static_cast<char*>(in);
  char* dst = static_cast<char*>(out);
  if (n == 1) {
    ctx.ops.copy(out, in, count * esz);
    return;
  }
  size_t seg = std::max<size_t>(1, ctx.segment_bytes / esz);
  for (size_t off = 0; off < count || off == 0; off += seg) {
    size_t len = std::min(seg, count - off);
    auto block = [&](int b) {
      return std::pair<char*, size_t>(base + (static_cast<size_t>(b) * count + off) * esz, len);
    };
    ring_reduce_scatter_steps(ctx, block, dtype, op, -1, dst + off * esz);
    if (op == ReduceOp::avg) ctx.ops.scale_down(dst + off * esz, len, dtype, n);
    if (count == 0) break;
  }
}

}  // namespace weft::comm
