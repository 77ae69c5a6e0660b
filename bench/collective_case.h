#pragma once
// One benchmarked collective at one size: how to launch it on the preallocated buffers, how to
// fill its inputs with the check pattern, and how to verify its output against the closed form.
//
// Sizes follow nccl-tests: `bytes` is the whole buffer (allgather's output, reduce_scatter's
// input), so each rank contributes or receives bytes / ranks. Element counts are rounded to a
// whole number per rank, at least one, so the reported bytes can differ a little from the request.
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "runtime/buffer.h"

namespace weft::bench {

inline const std::vector<std::string> kCollectiveOps = {"allreduce", "allgather", "reduce_scatter",
                                                        "broadcast"};

struct CollectiveCase {
  std::string op;
  size_t bytes = 0;                     // what the report shows, after rounding
  std::function<comm::Work()> launch;   // starts one op (allreduce sums in place)
  std::function<void()> fill;           // writes the check pattern into the inputs
  std::function<std::string()> verify;  // "" when the output matches, else what is wrong
};

// Bytes each of the two buffers needs for `bytes` of `dtype` on `ranks` ranks, any op.
size_t buffer_bytes_for(size_t bytes, DType dtype, int ranks);

// `a` and `b` must hold buffer_bytes_for(bytes, dtype, comm.size()) bytes and outlive the case
// (registered memory from comm.alloc(), or plain).
CollectiveCase make_collective_case(const std::string& op, size_t bytes, DType dtype,
                                    comm::Communicator& comm, const comm::RegisteredBuffer& a,
                                    const comm::RegisteredBuffer& b);

}  // namespace weft::bench
