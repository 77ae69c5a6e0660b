#pragma once
// How a tensor-parallel model reaches the other ranks of its tp group: in-place reductions of
// the model's own memory (host or device, as its context's). The model (models/gpt_model.h)
// calls these between its kernels: Megatron's conjugate pairs (the sum after a row-parallel
// product in forward, and after a column-parallel one in backward) and the max and sums of the
// vocabulary-parallel loss. It synchronizes its context first, so the data is complete when a
// call starts; a call returns once every rank's contribution is in.
#include <cstddef>
#include <utility>

#include "comm/communicator.h"
#include "runtime/clock.h"
#include "runtime/dtype.h"
#include "runtime/tensor.h"

namespace weft::parallel {

class TpGroup {
 public:
  virtual ~TpGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void allreduce(void* data, size_t count, DType dtype, ReduceOp op) = 0;
};

// Over a Communicator (a DeviceMesh's tp axis): one blocking allreduce per call, of memory on
// `device` (host, or the model's GPU, which a communicator with a GPU route reduces in place).
// It counts the time its calls take, for the share of a step spent in tp communication.
class CommunicatorTpGroup : public TpGroup {
 public:
  CommunicatorTpGroup(comm::Communicator& comm, Device device) : comm_(comm), device_(device) {}
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  void allreduce(void* data, size_t count, DType dtype, ReduceOp op) override {
    const Clock::time_point start = Clock::now();
    comm_.allreduce(Tensor::flat(data, dtype, count, device_), op).wait();
    seconds_ += seconds_since(start);
  }
  // Seconds spent in allreduce() since the last call.
  double take_seconds() { return std::exchange(seconds_, 0.0); }

 private:
  comm::Communicator& comm_;
  Device device_;
  double seconds_ = 0;
};

}  // namespace weft::parallel
