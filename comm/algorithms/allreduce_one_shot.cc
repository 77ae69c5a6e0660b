// One-shot allreduce: every rank sends its whole buffer to every other rank at once, then sums
// the n buffers itself, in rank order, so every rank ends with bit-identical results.
//
// For tiny messages the cost of an allreduce is the number of times a rank must wait for
// another, not bytes: recursive doubling waits log2(n) times in sequence, and each wait on a
// machine with more ranks than cores can cost a trip through the scheduler (the partner is not
// running). Here every rank waits once, for all its peers together; (n - 1) x bytes more
// traffic per rank is nothing at the sizes this runs at (options.one_shot_bytes).

#include <array>

#include "comm/algorithms/algorithms.h"
#include "runtime/error.h"

namespace weft::comm {

void allreduce_one_shot(const AlgoContext& ctx, void* data, size_t count, DType dtype,
                        ReduceOp op) {
  const int n = ctx.size(), r = ctx.rank();
  if (n == 1) return;
  const size_t bytes = count * dtype_size(dtype);
  if (bytes * static_cast<size_t>(n) > ctx.scratch_bytes)
    throw Error(ErrorCode::Internal, "one-shot allreduce needs " + std::to_string(bytes * n) +
                                         " bytes of scratch, has " +
                                         std::to_string(ctx.scratch_bytes));
  auto* slots = static_cast<std::byte*>(ctx.scratch);
  auto slot = [&](int p) { return slots + static_cast<size_t>(p) * bytes; };
  if (n > kOneShotMaxRanks)
    throw Error(ErrorCode::Internal, "one-shot allreduce on " + std::to_string(n) +
                                         " ranks; it runs on at most " +
                                         std::to_string(kOneShotMaxRanks));
  // On the stack: two allocations and frees per op cost a tenth of an 8-byte allreduce.
  std::array<Outgoing, kOneShotMaxRanks - 1> sends;
  std::array<Incoming, kOneShotMaxRanks - 1> recvs;
  for (int d = 1; d < n; d++) {  // the next rank first, as in a ring
    sends[d - 1] = {(r + d) % n, data, bytes, nullptr};
    recvs[d - 1] = {(r - d + n) % n, slot((r - d + n) % n), bytes, nullptr};
  }
  exchange(ctx, std::span<const Outgoing>(sends.data(), n - 1),
           std::span<const Incoming>(recvs.data(), n - 1));
  // data takes the running sum from the first reduction on, so this rank's part stays where it
  // is only when it is one of the first two summed; otherwise it waits in its slot. (On two
  // ranks, copies through the slots cost a sixth of an 8-byte allreduce.)
  if (r >= 2) ctx.ops.copy(slot(r), data, bytes);
  auto part = [&](int p) -> const void* { return p == r && r < 2 ? data : slot(p); };
  ctx.ops.reduce(data, part(0), part(1), count, dtype, op);
  for (int p = 2; p < n; p++) ctx.ops.reduce(data, data, slot(p), count, dtype, op);
  if (op == ReduceOp::avg) ctx.ops.scale_down(data, count, dtype, n);
}

}  // namespace weft::comm
