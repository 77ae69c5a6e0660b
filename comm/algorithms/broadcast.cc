// Broadcast. Small messages: a binomial tree (log2 n rounds). Large messages: a pipelined
// chain root -> root+1 -> ... in segments, so every link carries the data once and all links
// are busy at the same time (time ~ bytes/bandwidth + (n-2) segments).
#include <algorithm>

#include "comm/algorithms/algorithms.h"
#include "comm/algorithms/ring_steps.h"

namespace weft::comm {
namespace {

void broadcast_binomial(const AlgoContext& ctx, void* data, size_t bytes, int root) {
  int n = ctx.size();
  int v = ring_mod(ctx.rank() - root, n);  // rank relative to the root
  int mask = 1;
  while (mask < n) {
    if (v & mask) {
      send_recv(ctx, -1, nullptr, 0, ring_mod(v - mask + root, n), data, bytes);
      break;
    }
    mask <<= 1;
  }
  for (mask >>= 1; mask > 0; mask >>= 1)
    if (v + mask < n) send_recv(ctx, ring_mod(v + mask + root, n), data, bytes, -1, nullptr, 0);
}

void broadcast_chain(const AlgoContext& ctx, void* data, size_t bytes, int root) {
  int n = ctx.size();
  int v = ring_mod(ctx.rank() - root, n);
  int prev = v > 0 ? ring_mod(ctx.rank() - 1, n) : -1;
  int next = v < n - 1 ? ring_mod(ctx.rank() + 1, n) : -1;
  size_t seg = std::max<size_t>(1, ctx.segment_bytes);
  size_t segments = (bytes + seg - 1) / seg;
  char* base = static_cast<char*>(data);
  // Step k receives segment k and forwards segment k-1 at the same time.
  for (size_t k = 0; k <= segments; k++) {
    bool recv_now = prev >= 0 && k < segments;
    bool send_now = next >= 0 && k >= 1;
    size_t r_len = recv_now ? std::min(seg, bytes - k * seg) : 0;
    size_t s_len = send_now ? std::min(seg, bytes - (k - 1) * seg) : 0;
    send_recv(ctx, send_now ? next : -1, send_now ? base + (k - 1) * seg : nullptr, s_len,
              recv_now ? prev : -1, recv_now ? base + k * seg : nullptr, r_len);
  }
}

}  // namespace

void broadcast(const AlgoContext& ctx, void* data, size_t bytes, int root, size_t small_bytes) {
  if (ctx.size() == 1) return;
  if (bytes <= small_bytes || ctx.size() == 2) broadcast_binomial(ctx, data, bytes, root);
  else broadcast_chain(ctx, data, bytes, root);
}

}  // namespace weft::comm
