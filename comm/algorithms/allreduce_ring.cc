// Ring allreduce: reduce-scatter then allgather around the ring, bandwidth-optimal (each rank
// sends and receives 2(n-1)/n of the data). The buffer is processed in slices of n segments so
// that a segment reduced at one step is forwarded at the next while it is still in cache, and
// so that sending, receiving and reducing of consecutive steps overlap across the ring.
#include <algorithm>

#include "comm/algorithms/ring_steps.h"

namespace weft::comm {

void allreduce_ring(const AlgoContext& ctx, void* data, size_t count, DType dtype, ReduceOp op) {
  int n = ctx.size(), r = ctx.rank();
  if (n == 1) {
    return;  // avg over one rank is the identity
  }
  size_t esz = dtype_size(dtype);
  size_t seg = std::max<size_t>(1, ctx.segment_bytes / esz);
  size_t slice = seg * static_cast<size_t>(n);
  char* base = static_cast<char*>(data);
  // A zero-count call still runs one (empty) slice so peers compare fingerprints.
  for (size_t off = 0; off < count || off == 0; off += slice) {
    size_t len = std::min(slice, count - off);
    auto block = [&](int b) {
      auto [first, c] = block_range(len, n, b);
      return std::pair<char*, size_t>(base + (off + first) * esz, c);
    };
    ring_reduce_scatter_steps(ctx, block, dtype, op, 0, nullptr);
    if (op == ReduceOp::avg) {
      auto [p, c] = block(ring_mod(r + 1, n));
      ctx.ops.scale_down(p, c, dtype, n);
    }
    ring_allgather_steps(ctx, block, esz, 0);
    if (count == 0) break;
  }
}

}  // namespace weft::comm
