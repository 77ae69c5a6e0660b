#pragma once
// What a CUDA kernel runs with: the device, the stream its work is enqueued on, and the cuBLAS
// and cuBLASLt handles (with cuBLASLt's workspace) its GEMMs use. Every call in kernels/cuda
// takes a CudaContext first, as every CPU kernel takes a CpuContext (kernels/context.h), so the
// two sides have the same signatures; an unqualified call such as matmul_forward(ctx, ...) finds
// the kernel of ctx's device.
//
// Whoever owns the stream makes one context for it, once (the trainer, a test), and passes it
// to every kernel: nothing in kernels/cuda keeps handles or workspaces of its own behind its
// callers. Making one costs milliseconds (the handles) and a 32 MiB device allocation (the
// workspace Hopper's fastest cuBLASLt kernels ask for); no kernel call allocates after it.
//
// The caller makes ctx.device() current on its thread before calling a kernel (CUDA launches on
// the current device). A context is used by one thread at a time: cuBLAS handles are not safe
// to share between threads running at once.
#include <cuda_runtime_api.h>

#include <memory>

namespace weft::kernels::cuda {

namespace detail {
struct BlasHandles;  // kernels/cuda/blas.h
}  // namespace detail

class CudaContext {
 public:
  // Handles and workspace for work on `stream`, which must belong to cuda:`device` (the
  // handles are made on that device whatever is current). Throws Unavailable without that
  // device or without memory for the workspace.
  CudaContext(int device, cudaStream_t stream);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  // For kernels/cuda's GEMMs (blas.h); opaque elsewhere.
  const detail::BlasHandles& blas() const { return *blas_; }

 private:
  int device_;
  cudaStream_t stream_;
  std::unique_ptr<detail::BlasHandles> blas_;
};

}  // namespace weft::kernels::cuda
