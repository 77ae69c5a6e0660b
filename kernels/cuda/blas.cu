#include <string>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/check.h"
#include "runtime/error.h"

namespace weft::kernels::cuda::detail {

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

template <typename T>
void gemm_row_major(const CudaContext& ctx, bool transpose_a, bool transpose_b, int M, int N, int K,
                    float alpha, const T* A, int lda, long long stride_a, const T* B, int ldb,
                    long long stride_b, float beta, T* C, int ldc, long long stride_c, int batch) {
  if (M == 0 || N == 0 || batch == 0) return;
  constexpr cudaDataType_t type = cuda_data_type<T>();
  const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // Column-major C^T[N, M] = op(B)^T[N, K] @ op(A)^T[K, M]: B first, then A (see blas.h).
  // CUBLAS_COMPUTE_32F keeps f32 products in full f32 (no TF32), so results match the CPU.
  WEFT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      ctx.blas().blas, op_b, op_a, N, M, K, &alpha, B, type, ldb, stride_b, A, type, lda, stride_a,
      &beta, C, type, ldc, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template void gemm_row_major<float>(const CudaContext&, bool, bool, int, int, int, float,
                                    const float*, int, long long, const float*, int, long long,
                                    float, float*, int, long long, int);
template void gemm_row_major<__nv_bfloat16>(const CudaContext&, bool, bool, int, int, int, float,
                                            const __nv_bfloat16*, int, long long,
                                            const __nv_bfloat16*, int, long long, float,
                                            __nv_bfloat16*, int, long long, int);

}  // namespace weft::kernels::cuda::detail
