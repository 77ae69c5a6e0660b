#include <string>

#include "kernels/cuda/check.h"
#include "runtime/error.h"

namespace weft::kernels::cuda {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  std::string message = std::string(call) + " failed at " + file + ":" + std::to_string(line) +
                        ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
  switch (status) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
      throw Error(ErrorCode::Unavailable,
                  message +
                      "; no usable GPU: check nvidia-smi, the driver version and "
                      "CUDA_VISIBLE_DEVICES, or run on the CPU");
    case cudaErrorMemoryAllocation:
      throw Error(ErrorCode::Unavailable,
                  message +
                      "; the GPU is out of memory: lower the (micro-)batch or the model "
                      "size, or check that no other process holds the device");
    default:
      // Faults inside a kernel (an illegal address, a trap) leave the CUDA context unusable.
      throw Error(ErrorCode::Internal,
                  message +
                      "; if this was a fault inside a kernel the process must restart "
                      "(run it under compute-sanitizer to find the access)");
  }
}

}  // namespace weft::kernels::cuda
