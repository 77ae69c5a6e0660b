#pragma once
// The CUDA devices this process can see, and the checks every CUDA resource in runtime/ makes
// before touching one, so "no GPU here" is one clear Unavailable error instead of a CUDA code.
// Part of weft_runtime_cuda, which exists only when weft is built with CUDA.
//
// runtime/ sits below kernels/, so it cannot use kernels/cuda/check.h; check_cuda_status below
// is the runtime layer's own translation, worded for allocations, streams and events.
#include <cuda_runtime_api.h>

#include <string>

namespace weft {

// How many devices CUDA shows this process; 0 without a GPU or without a driver (not an error:
// callers decide whether they need one).
int cuda_device_count();

// Throws Unavailable when cuda:`device` cannot be used (no GPU, no driver, or an index beyond
// what CUDA_VISIBLE_DEVICES leaves), naming `what` (who needed it) and what to check.
void require_cuda_device(int device, const std::string& what);

// Throws weft::Error for a failed CUDA runtime call: Unavailable for a missing device, a driver
// too old or out-of-memory; Internal otherwise. `what` names the call and what it was for.
void check_cuda_status(cudaError_t status, const std::string& what);

// Makes `device` current on this thread for the guard's lifetime, then restores the previous
// one, so a library call on another device does not change the caller's current device.
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int device);
  ~CudaDeviceGuard();
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace weft
