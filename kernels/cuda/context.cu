#include <memory>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "runtime/cuda_device.h"

namespace weft::kernels::cuda {
namespace {

// Hopper's fastest cuBLASLt kernels ask for up to 32 MiB (NVIDIA's guidance for sm_90).
constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

}  // namespace

// Errors are ignored: this may run at process exit, after the CUDA runtime has begun to shut
// down. Whatever the constructor made before it failed is freed too.
detail::BlasHandles::~BlasHandles() {
  if (workspace != nullptr) cudaFree(workspace);
  if (lt != nullptr) cublasLtDestroy(lt);
  if (blas != nullptr) cublasDestroy(blas);
}

CudaContext::CudaContext(int device, cudaStream_t stream)
    : device_(device), stream_(stream), blas_(std::make_unique<detail::BlasHandles>()) {
  require_cuda_device(device, "kernels::cuda::CudaContext");
  CudaDeviceGuard on_device(device);  // a handle and an allocation belong to the current device
  WEFT_CUBLAS_CHECK(cublasCreate(&blas_->blas));
  WEFT_CUBLAS_CHECK(cublasSetStream(blas_->blas, stream));
  WEFT_CUBLAS_CHECK(cublasLtCreate(&blas_->lt));
  WEFT_CUDA_CHECK(cudaMalloc(&blas_->workspace, kLtWorkspaceBytes));
  blas_->workspace_bytes = kLtWorkspaceBytes;
}

CudaContext::~CudaContext() = default;

}  // namespace weft::kernels::cuda
