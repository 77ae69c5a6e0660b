// Ring allgather: n-1 steps, each forwarding the block received at the previous step. Blocks go
// as whole messages: with no reduction to interleave, the transport streams them itself.
#include "comm/algorithms/ring_steps.h"

namespace weft::comm {

void allgather_ring(const AlgoContext& ctx, void* out, size_t count, DType dtype) {
  size_t esz = dtype_size(dtype);
  char* base = static_cast<char*>(out);
  auto block = [&](int b) {
    return std::pair<char*, size_t>(base + static_cast<size_t>(b) * count * esz, count);
  };
  ring_allgather_steps(ctx, block, esz, -1);
}

}  // namespace weft::comm
