#include "runtime/cuda_device.h"

#include "runtime/error.h"

namespace weft {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" status so later calls start clean
    return 0;
  }
  return count;
}

void require_cuda_device(int device, const std::string& what) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::Unavailable,
                what + " needs cuda:" + std::to_string(device) + ", but CUDA finds no usable GPU (" +
                    cudaGetErrorName(status) + ": " + cudaGetErrorString(status) +
                    "); check nvidia-smi, the driver version and CUDA_VISIBLE_DEVICES, or use a "
                    "cpu tensor and a cpu backend (tcp, shm, mpi)");
  }
  if (device < 0 || device >= count)
    throw Error(ErrorCode::Unavailable,
                what + " needs cuda:" + std::to_string(device) + ", but this process sees " +
                    std::to_string(count) + " GPU(s) (cuda:0..cuda:" + std::to_string(count - 1) +
                    "); check CUDA_VISIBLE_DEVICES and how many ranks share this node");
}

void check_cuda_status(cudaError_t status, const std::string& what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // a non-sticky error must not resurface at the next, unrelated call
  std::string message =
      what + " failed: " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
  switch (status) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
      throw Error(ErrorCode::Unavailable,
                  message + "; no usable GPU: check nvidia-smi, the driver version and "
                            "CUDA_VISIBLE_DEVICES");
    case cudaErrorMemoryAllocation:
      throw Error(ErrorCode::Unavailable,
                  message + "; the GPU (or pinned host memory) is exhausted: lower the sizes, or "
                            "check that no other process holds the device");
    default:
      throw Error(ErrorCode::Internal,
                  message + "; after a fault inside a kernel the process must restart (run it "
                            "under compute-sanitizer to find the access)");
  }
}

CudaDeviceGuard::CudaDeviceGuard(int device) {
  check_cuda_status(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ == device) return;
  check_cuda_status(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
}

CudaDeviceGuard::~CudaDeviceGuard() {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current != previous_) cudaSetDevice(previous_);
}

}  // namespace weft
