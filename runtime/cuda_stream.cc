#include "runtime/cuda_stream.h"

#include "runtime/cuda_device.h"

namespace weft {
namespace {

// Destructors switch to the handle's device without throwing.
template <typename Fn>
void on_device_quietly(int device, Fn fn) {
  int previous = -1;
  bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device &&
                  cudaSetDevice(device) == cudaSuccess;
  fn();
  if (switched) cudaSetDevice(previous);
}

}  // namespace

void CudaStream::Destroy::operator()(cudaStream_t s) const {
  on_device_quietly(device, [s] { cudaStreamDestroy(s); });
}

CudaStream::CudaStream(int device) {
  require_cuda_device(device, "creating a CUDA stream");
  CudaDeviceGuard on(device);
  cudaStream_t s = nullptr;
  check_cuda_status(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
                    "cudaStreamCreateWithFlags on cuda:" + std::to_string(device));
  handle_ = decltype(handle_)(s, Destroy{device});
}

void CudaEvent::Destroy::operator()(cudaEvent_t e) const {
  on_device_quietly(device, [e] { cudaEventDestroy(e); });
}

CudaEvent::CudaEvent(int device) {
  require_cuda_device(device, "creating a CUDA event");
  CudaDeviceGuard on(device);
  cudaEvent_t e = nullptr;
  check_cuda_status(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
                    "cudaEventCreateWithFlags on cuda:" + std::to_string(device));
  handle_ = decltype(handle_)(e, Destroy{device});
}

void CudaEvent::record(const CudaStream& stream) {
  check_cuda_status(cudaEventRecord(get(), stream.get()), "cudaEventRecord");
}

bool CudaEvent::query(const std::string& what) const {
  cudaError_t status = cudaEventQuery(get());
  if (status == cudaErrorNotReady) return false;
  check_cuda_status(status, what);
  return true;
}

}  // namespace weft
