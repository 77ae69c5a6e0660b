#include <map>
#include <memory>
#include <string>
#include <utility>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/check.h"
#include "runtime/error.h"

namespace weft::kernels::cuda::detail {
namespace {

// Hopper's fastest cuBLASLt kernels ask for up to 32 MiB (NVIDIA's guidance for sm_90).
constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

// The handles of one device for one thread. Destruction ignores errors: it may run at thread
// or process exit, after the CUDA runtime has begun to shut down.
class DeviceBlas {
 public:
  DeviceBlas() {
    WEFT_CUBLAS_CHECK(cublasCreate(&blas_));
    WEFT_CUBLAS_CHECK(cublasLtCreate(&lt_));
  }
  ~DeviceBlas() {
    for (auto& [stream, workspace] : workspaces_) cudaFree(workspace);
    cublasLtDestroy(lt_);
    cublasDestroy(blas_);
  }
  DeviceBlas(const DeviceBlas&) = delete;
  DeviceBlas& operator=(const DeviceBlas&) = delete;

  cublasHandle_t blas() const { return blas_; }
  cublasLtHandle_t lt() const { return lt_; }

  void* workspace_for(cudaStream_t stream) {
    auto it = workspaces_.find(stream);
    if (it != workspaces_.end()) return it->second;
    void* workspace = nullptr;
    WEFT_CUDA_CHECK(cudaMalloc(&workspace, kLtWorkspaceBytes));
    workspaces_.emplace(stream, workspace);
    return workspace;
  }

 private:
  cublasHandle_t blas_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  std::map<cudaStream_t, void*> workspaces_;
};

DeviceBlas& device_blas() {
  thread_local std::map<int, std::unique_ptr<DeviceBlas>> per_device;
  int device = 0;
  WEFT_CUDA_CHECK(cudaGetDevice(&device));
  std::unique_ptr<DeviceBlas>& blas = per_device[device];
  if (!blas) blas = std::make_unique<DeviceBlas>();
  return *blas;
}

}  // namespace

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  std::string message = std::string(call) + " failed at " + file + ":" + std::to_string(line) +
                        ": " + cublasGetStatusName(status) + " (" + cublasGetStatusString(status) +
                        ")";
  if (status == CUBLAS_STATUS_ALLOC_FAILED) {
    throw Error(ErrorCode::Unavailable,
                message + "; the GPU is out of memory: lower the batch or the model size");
  }
  if (status == CUBLAS_STATUS_NOT_INITIALIZED) {
    throw Error(ErrorCode::Unavailable,
                message +
                    "; cuBLAS could not start: check that a GPU is visible (nvidia-smi, "
                    "CUDA_VISIBLE_DEVICES) and that the driver matches the toolkit");
  }
  throw Error(ErrorCode::Internal,
              message + "; check the shapes and pointers passed to the kernel");
}

cublasHandle_t cublas_for(cudaStream_t stream) {
  cublasHandle_t handle = device_blas().blas();
  WEFT_CUBLAS_CHECK(cublasSetStream(handle, stream));
  return handle;
}

LtContext cublaslt_for(cudaStream_t stream) {
  DeviceBlas& blas = device_blas();
  return {blas.lt(), blas.workspace_for(stream), kLtWorkspaceBytes};
}

template <typename T>
void gemm_row_major(cudaStream_t stream, bool transpose_a, bool transpose_b, int M, int N, int K,
                    float alpha, const T* A, int lda, long long stride_a, const T* B, int ldb,
                    long long stride_b, float beta, T* C, int ldc, long long stride_c, int batch) {
  if (M == 0 || N == 0 || batch == 0) return;
  constexpr cudaDataType_t type = cuda_data_type<T>();
  const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // Column-major C^T[N, M] = op(B)^T[N, K] @ op(A)^T[K, M]: B first, then A (see blas.h).
  // CUBLAS_COMPUTE_32F keeps f32 products in full f32 (no TF32), so results match the CPU.
  WEFT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas_for(stream), op_b, op_a, N, M, K, &alpha, B, type, ldb, stride_b, A, type, lda,
      stride_a, &beta, C, type, ldc, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template void gemm_row_major<float>(cudaStream_t, bool, bool, int, int, int, float, const float*,
                                    int, long long, const float*, int, long long, float, float*,
                                    int, long long, int);
template void gemm_row_major<__nv_bfloat16>(cudaStream_t, bool, bool, int, int, int, float,
                                            const __nv_bfloat16*, int, long long,
                                            const __nv_bfloat16*, int, long long, float,
                                            __nv_bfloat16*, int, long long, int);

}  // namespace weft::kernels::cuda::detail
