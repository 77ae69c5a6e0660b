#pragma once
// How a tensor-parallel model reaches the other ranks of its tp group: in-place reductions of
// the model's own memory (host or device, as its context's). The model calls these between
// its kernels (Megatron's conjugate pairs: the sum after a row-parallel product in forward and
// after a column-parallel one in backward; max and sums of the vocabulary-parallel loss), after
// synchronizing its context, so the data is complete when the call starts; the call returns
// once every rank's contribution is in. parallel/ implements it with a Communicator; the model
// itself knows nothing of communicators.
#include <cstddef>

#include "runtime/dtype.h"

namespace weft::models {

class TpGroup {
 public:
  virtual ~TpGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void allreduce(void* data, size_t count, DType dtype, ReduceOp op) = 0;
};

}  // namespace weft::models
