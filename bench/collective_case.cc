#include "bench/collective_case.h"

#include <algorithm>

#include "bench/check_pattern.h"
#include "runtime/error.h"

namespace weft::bench {
namespace {

size_t elements_for(size_t bytes, DType dtype) {
  return std::max<size_t>(1, bytes / dtype_size(dtype));
}

// Elements each rank owns in allgather / reduce_scatter.
size_t block_for(size_t bytes, DType dtype, int ranks) {
  return std::max<size_t>(1, elements_for(bytes, dtype) / static_cast<size_t>(ranks));
}

}  // namespace

size_t buffer_bytes_for(size_t bytes, DType dtype, int ranks) {
  size_t whole = std::max(elements_for(bytes, dtype),
                          block_for(bytes, dtype, ranks) * static_cast<size_t>(ranks));
  return whole * dtype_size(dtype);
}

CollectiveCase make_collective_case(const std::string& op, size_t bytes, DType dtype,
                                    comm::Communicator& comm, const comm::RegisteredBuffer& a,
                                    const comm::RegisteredBuffer& b) {
  const int n = comm.size();
  const int rank = comm.rank();
  CollectiveCase c;
  c.op = op;

  if (op == "allreduce") {
    Tensor data = a.view(dtype, elements_for(bytes, dtype));
    c.bytes = data.nbytes();
    c.launch = [&comm, data] { return comm.allreduce(data, ReduceOp::sum); };
    c.fill = [data, rank] { fill_pattern(data, rank, 0); };
    c.verify = [data, n] {
      return check_elements(data, n, [n](size_t i) { return pattern_sum(n, i); });
    };
  } else if (op == "broadcast") {
    Tensor data = a.view(dtype, elements_for(bytes, dtype));
    c.bytes = data.nbytes();
    c.launch = [&comm, data] { return comm.broadcast(data, 0); };
    c.fill = [data, rank] {
      if (rank == 0)
        fill_pattern(data, 0, 0);
      else
        fill_constant(data, 0);  // the pattern is never 0, so a missed write shows
    };
    c.verify = [data] {
      return check_elements(data, 1, [](size_t i) { return pattern_value(0, i); });
    };
  } else if (op == "allgather") {
    size_t block = block_for(bytes, dtype, n);
    Tensor in = a.view(dtype, block);
    Tensor out = b.view(dtype, block * static_cast<size_t>(n));
    c.bytes = out.nbytes();
    c.launch = [&comm, in, out] { return comm.allgather(in, out); };
    c.fill = [in, out, rank] {
      fill_pattern(in, rank, 0);
      fill_constant(out, 0);
    };
    c.verify = [out, block] {
      return check_elements(out, 1, [block](size_t i) {
        return pattern_value(static_cast<int>(i / block), i % block);
      });
    };
  } else if (op == "reduce_scatter") {
    size_t block = block_for(bytes, dtype, n);
    Tensor in = a.view(dtype, block * static_cast<size_t>(n));
    Tensor out = b.view(dtype, block);
    c.bytes = in.nbytes();
    c.launch = [&comm, in, out] { return comm.reduce_scatter(in, out, ReduceOp::sum); };
    c.fill = [in, out, rank] {
      fill_pattern(in, rank, 0);
      fill_constant(out, 0);
    };
    size_t first = static_cast<size_t>(rank) * block;
    c.verify = [out, n, first] {
      return check_elements(out, n, [n, first](size_t i) { return pattern_sum(n, first + i); });
    };
  } else {
    throw Error(ErrorCode::InvalidArgument, "benchmark: unknown collective '" + op + "'");
  }
  return c;
}

}  // namespace weft::bench
