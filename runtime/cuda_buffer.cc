#include "runtime/cuda_buffer.h"

#include "runtime/cuda_device.h"
#include "runtime/error.h"

namespace weft {

void CudaBuffer::Free::operator()(void* p) const {
  // Never throws: a failure here (a context already broken by a kernel fault) has been reported
  // by whatever broke it.
  int previous = -1;
  bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device &&
                  cudaSetDevice(device) == cudaSuccess;
  cudaFree(p);
  if (switched) cudaSetDevice(previous);
}

CudaBuffer::CudaBuffer(size_t bytes, int device) : data_(nullptr, Free{device}), size_(bytes) {
  std::string what = "allocating " + std::to_string(bytes) + " bytes on cuda:" +
                     std::to_string(device);
  require_cuda_device(device, what);
  if (bytes == 0) return;
  CudaDeviceGuard on(device);
  void* p = nullptr;
  check_cuda_status(cudaMalloc(&p, bytes), "cudaMalloc, " + what);
  data_.reset(p);
  // On the legacy default stream, then waited for: no stream of the caller's sees it pending.
  check_cuda_status(cudaMemset(p, 0, bytes), "cudaMemset, zeroing a fresh buffer on cuda:" +
                                                   std::to_string(device));
  check_cuda_status(cudaStreamSynchronize(nullptr), "zeroing a fresh buffer");
}

Tensor CudaBuffer::view(DType dtype, size_t count) const {
  return Tensor::within(data_.get(), size_, dtype, count, device(), "CUDA buffer");
}

void CudaBuffer::upload(const void* host, size_t bytes) {
  if (bytes > size_)
    throw Error(ErrorCode::InvalidArgument, "upload of " + std::to_string(bytes) +
                                                " bytes into a CUDA buffer of " +
                                                std::to_string(size_) + " on " + device().str());
  if (bytes == 0) return;
  CudaDeviceGuard on(device_index());
  check_cuda_status(cudaMemcpy(data(), host, bytes, cudaMemcpyHostToDevice),
                    "cudaMemcpy to " + device().str());
  // From pageable memory cudaMemcpy may return before its DMA has landed, and work on a
  // non-blocking stream is not ordered after it: wait, so the data is there for any stream.
  check_cuda_status(cudaStreamSynchronize(nullptr), "finishing an upload to " + device().str());
}

void CudaBuffer::download(void* host, size_t bytes) const {
  if (bytes > size_)
    throw Error(ErrorCode::InvalidArgument, "download of " + std::to_string(bytes) +
                                                " bytes from a CUDA buffer of " +
                                                std::to_string(size_) + " on " + device().str());
  if (bytes == 0) return;
  CudaDeviceGuard on(device_index());
  check_cuda_status(cudaMemcpy(host, data(), bytes, cudaMemcpyDeviceToHost),
                    "cudaMemcpy from " + device().str());
}

}  // namespace weft
