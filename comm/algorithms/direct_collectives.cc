// Collectives on registered memory (comm/direct_access.h): each rank reads its peers' buffers
// in place, mapped into its own address space, instead of receiving copies through a FIFO.
// DirectAccess::run orders the op's start and end; these functions are one rank's share of the
// work between them. The shares never overlap: a byte that one rank writes during the op is
// read or written by no other rank during it.
//
// The reductions go chunk by chunk (kChunkBytes), so the partial result stays in L2 while each
// peer's chunk is read into it and while it is written out.
#include <algorithm>
#include <cstring>
#include <functional>

#include "comm/algorithms/algorithms.h"

namespace weft::comm {
namespace {

constexpr size_t kChunkBytes = 64 * 1024;

// out = the reduction, over every rank r, of `count` elements at bases[r] + at, chunk by chunk
// through scratch when `out` is one of the inputs' buffers.
void reduce_every_rank(const AlgoContext& ctx, std::span<std::byte* const> bases, size_t at,
                       size_t count, DType dtype, ReduceOp op,
                       const std::function<void(const std::byte* sum, size_t from, size_t n)>&
                           deliver) {
  const size_t esize = dtype_size(dtype);
  const size_t per_chunk = std::max<size_t>(1, std::min(kChunkBytes, ctx.scratch_bytes) / esize);
  auto* sum = static_cast<std::byte*>(ctx.scratch);
  for (size_t done = 0; done < count; done += per_chunk) {
    const size_t n = std::min(per_chunk, count - done);
    const size_t off = at + done * esize;
    ctx.ops.reduce(sum, bases[0] + off, bases[1] + off, n, dtype, op);
    for (size_t r = 2; r < bases.size(); ++r) ctx.ops.reduce(sum, sum, bases[r] + off, n, dtype, op);
    if (op == ReduceOp::avg) ctx.ops.scale_down(sum, n, dtype, static_cast<int>(bases.size()));
    deliver(sum, done, n);
  }
}

}  // namespace

void allreduce_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, size_t count,
                      DType dtype, ReduceOp op) {
  const size_t esize = dtype_size(dtype);
  auto [first, mine] = block_range(count, ctx.size(), ctx.rank());
  reduce_every_rank(ctx, bases, first * esize, mine, dtype, op,
                    [&](const std::byte* sum, size_t from, size_t n) {
                      for (std::byte* base : bases)
                        std::memcpy(base + (first + from) * esize, sum, n * esize);
                    });
}

void reduce_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, size_t count,
                   DType dtype, ReduceOp op, int root) {
  const size_t esize = dtype_size(dtype);
  auto [first, mine] = block_range(count, ctx.size(), ctx.rank());
  std::byte* out = bases[root] + first * esize;
  reduce_every_rank(ctx, bases, first * esize, mine, dtype, op,
                    [&](const std::byte* sum, size_t from, size_t n) {
                      std::memcpy(out + from * esize, sum, n * esize);
                    });
}

void reduce_scatter_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, void* out,
                           size_t count, DType dtype, ReduceOp op) {
  const size_t esize = dtype_size(dtype);
  auto* to = static_cast<std::byte*>(out);
  reduce_every_rank(ctx, bases, static_cast<size_t>(ctx.rank()) * count * esize, count, dtype, op,
                    [&](const std::byte* sum, size_t from, size_t n) {
                      std::memcpy(to + from * esize, sum, n * esize);
                    });
}

void broadcast_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, size_t bytes,
                      int root) {
  if (ctx.rank() != root) ctx.ops.copy(bases[ctx.rank()], bases[root], bytes);
}

void allgather_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, void* out,
                      size_t block_bytes) {
  // Starting at the next rank, so that the ranks do not all read rank 0's block at once.
  const int n = ctx.size();
  for (int k = 0; k < n; ++k) {
    const int r = (ctx.rank() + k) % n;
    std::byte* to = static_cast<std::byte*>(out) + static_cast<size_t>(r) * block_bytes;
    if (to != bases[r]) ctx.ops.copy(to, bases[r], block_bytes);
  }
}

void alltoall_direct(const AlgoContext& ctx, std::span<std::byte* const> bases, void* out,
                     size_t block_bytes) {
  const int n = ctx.size();
  const size_t mine = static_cast<size_t>(ctx.rank()) * block_bytes;
  for (int k = 0; k < n; ++k) {
    const int r = (ctx.rank() + k) % n;
    ctx.ops.copy(static_cast<std::byte*>(out) + static_cast<size_t>(r) * block_bytes,
                 bases[r] + mine, block_bytes);
  }
}

}  // namespace weft::comm
