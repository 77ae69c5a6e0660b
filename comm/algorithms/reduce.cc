// Reduce to a root as a pipelined chain ending at the root: rank root+1 sends its data toward
// the root in segments, and each rank on the way adds its own before forwarding. Every link
// carries the data once, and all links work at the same time.
#include <algorithm>

#include "comm/algorithms/ring_steps.h"

namespace weft::comm {

void reduce(const AlgoContext& ctx, const void* in, void* out, size_t count, DType dtype,
            ReduceOp op, int root) {
  int n = ctx.size();
  size_t esz = dtype_size(dtype);
  int v = ring_mod(ctx.rank() - root, n);  // the chain runs v = n-1 -> ... -> 1 -> 0 (root)
  int from = v < n - 1 ? ring_mod(ctx.rank() + 1, n) : -1;
  int to = v > 0 ? ring_mod(ctx.rank() - 1, n) : -1;
  size_t seg = std::max<size_t>(1, ctx.segment_bytes / esz);
  size_t segments = std::max<size_t>(1, (count + seg - 1) / seg);
  const char* src = static_cast<const char*>(in);
  char* tmp = static_cast<char*>(ctx.scratch);  // the partial received from upstream
  char* partial = tmp + seg * esz;               // ours, combined; its send completes in-step
  // Step k receives segment k and forwards segment k-1 (already combined with our data).
  for (size_t k = 0; k <= segments; k++) {
    bool recv_now = from >= 0 && k < segments;
    bool send_now = to >= 0 && k >= 1;
    size_t r_len = recv_now ? std::min(seg, count - std::min(count, k * seg)) : 0;
    size_t s_len = send_now ? std::min(seg, count - std::min(count, (k - 1) * seg)) : 0;
    send_recv(ctx, send_now ? to : -1, send_now ? partial : nullptr, s_len * esz,
              recv_now ? from : -1, recv_now ? tmp : nullptr, r_len * esz);
    if (k < segments) {
      size_t len = std::min(seg, count - std::min(count, k * seg));
      char* dst = v == 0 ? static_cast<char*>(out) + k * seg * esz : partial;
      const char* mine = src + k * seg * esz;
      if (from >= 0) ctx.ops.reduce(dst, mine, tmp, len, dtype, op);
      else ctx.ops.copy(dst, mine, len * esz);
      if (v == 0 && op == ReduceOp::avg) ctx.ops.scale_down(dst, len, dtype, n);
    }
  }
}

}  // namespace weft::comm
