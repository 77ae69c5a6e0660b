#pragma once
// DeviceStaging: how a communicator whose backend moves host memory (tcp, shm, mpi-ring, mpi)
// takes CUDA tensors. Each op copies what it reads from the device into host memory, runs on
// the host copy, and copies what it writes back; an allreduce does so in chunks, so copying
// one chunk overlaps the reduction of the one before. The CUDA implementation copies through
// pinned memory on a stream of its own; tests substitute one that copies host memory.
#include <cstddef>
#include <functional>
#include <memory>

#include "runtime/clock.h"

namespace weft::comm {

class DeviceStaging {
 public:
  virtual ~DeviceStaging() = default;
  // Host memory for staging: `which` (0 or 1) names one of two independent areas, each at
  // least `bytes` long. Kept and reused; growing one may move it (after waiting, until
  // `deadline`, for copies still queued on it).
  virtual std::byte* host(int which, size_t bytes, Deadline deadline) = 0;
  // Queue a copy; copies run in the order queued. wait() returns once all queued copies are
  // done, or throws Timeout at `deadline` (the op's: a hung GPU fails the op, not the process).
  virtual void to_host(std::byte* host, const void* device, size_t bytes) = 0;
  virtual void to_device(void* device, const std::byte* host, size_t bytes) = 0;
  virtual void wait(Deadline deadline) = 0;
};

using MakeDeviceStaging = std::function<std::unique_ptr<DeviceStaging>(int cuda_device)>;

// Pinned buffers and a stream on cuda:`cuda_device`. Throws Unavailable when weft was built
// without CUDA or the device cannot be used.
std::unique_ptr<DeviceStaging> make_cuda_staging(int cuda_device);

}  // namespace weft::comm
