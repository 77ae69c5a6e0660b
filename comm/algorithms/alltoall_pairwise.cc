// Pairwise alltoall: at step k rank r sends its block for r+k and receives r-k's block for it,
// so every step is one full-duplex exchange and no rank is a hot spot.

#include "comm/algorithms/ring_steps.h"

namespace weft::comm {

void alltoall_pairwise(const AlgoContext& ctx, const void* in, void* out, size_t block_bytes) {
  int n = ctx.size(), r = ctx.rank();
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  ctx.ops.copy(dst + r * block_bytes, src + r * block_bytes, block_bytes);
  for (int k = 1; k < n; k++) {
    int to = ring_mod(r + k, n), from = ring_mod(r - k, n);
    send_recv(ctx, to, src + to * block_bytes, block_bytes, from, dst + from * block_bytes,
              block_bytes);
  }
}

}  // namespace weft::comm
