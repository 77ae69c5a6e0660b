#include <cuda_runtime_api.h>

#include "comm/pointer_device.h"

namespace weft::comm {

Device pointer_device(const void* p) {
  if (p == nullptr) return Device::cpu();
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();  // host memory CUDA never saw (or no driver): clear the sticky error
    return Device::cpu();
  }
  if (attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged)
    return Device::cuda(attributes.device);
  return Device::cpu();
}

}  // namespace weft::comm
