#pragma once
// The two halves of a ring, shared by allreduce, reduce_scatter and allgather. `block(b)`
// returns {pointer, element count} of block b of the current piece of work; blocks may differ
// in size by one element. Rank r sends to r+1 and receives from r-1 at every step.

#include "comm/algorithms/algorithms.h"

namespace weft::comm {

inline int ring_mod(int x, int n) { return ((x % n) + n) % n; }

// After n-1 steps rank r holds the full reduction of block r+1+shift (mod n), where shift lets
// callers choose which block each rank ends with. At the last step the reduction is written to
// `final_out` (when not null) instead of back into the block.
template <typename BlockFn>
void ring_reduce_scatter_steps(const AlgoContext& ctx, BlockFn block, DType dtype, ReduceOp op,
                               int shift, void* final_out) {
  int n = ctx.size(), r = ctx.rank();
  size_t esz = dtype_size(dtype);
  for (int s = 0; s < n - 1; s++) {
    auto [send_ptr, send_count] = block(ring_mod(r - s + shift, n));
    auto [recv_ptr, recv_count] = block(ring_mod(r - s - 1 + shift, n));
    send_recv(ctx, ring_mod(r + 1, n), send_ptr, send_count * esz, ring_mod(r - 1, n),
              ctx.scratch, recv_count * esz);
    void* dst = (s == n - 2 && final_out) ? final_out : recv_ptr;
    ctx.ops.reduce(dst, recv_ptr, ctx.scratch, recv_count, dtype, op);
  }
}

// Rank r starts owning block r+1+shift and ends with every block.
template <typename BlockFn>
void ring_allgather_steps(const AlgoContext& ctx, BlockFn block, size_t esz, int shift) {
  int n = ctx.size(), r = ctx.rank();
  for (int s = 0; s < n - 1; s++) {
    auto [send_ptr, send_count] = block(ring_mod(r + 1 - s + shift, n));
    auto [recv_ptr, recv_count] = block(ring_mod(r - s + shift, n));
    send_recv(ctx, ring_mod(r + 1, n), send_ptr, send_count * esz, ring_mod(r - 1, n), recv_ptr,
              recv_count * esz);
  }
}

}  // namespace weft::comm
