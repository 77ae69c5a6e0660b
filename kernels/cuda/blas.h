#pragma once
// Internal to kernels/cuda: the cuBLAS and cuBLASLt handles a CudaContext owns, and a
// row-major GEMM on them.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/context.h"

namespace weft::kernels::cuda::detail {

// Throws weft::Error(Internal) naming the cuBLAS call (its source text) and cuBLAS's status.
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cublas_error(status, call, file, line);
}
#define WEFT_CUBLAS_CHECK(call) \
  ::weft::kernels::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)

// The handles of one CudaContext, made on its device (context.cu); freed, ignoring errors, with
// it. The cuBLAS handle is bound to the context's stream once, when made. The workspace is the
// context's alone: two GEMMs running at once on different streams must not share one.
struct BlasHandles {
  BlasHandles() = default;
  ~BlasHandles();
  BlasHandles(const BlasHandles&) = delete;
  BlasHandles& operator=(const BlasHandles&) = delete;

  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;  // for cuBLASLt, on the context's device
  size_t workspace_bytes = 0;
};

// cuBLAS speaks column-major; weft's tensors are row-major. The same bytes read column-major
// are the transpose, so row-major C = op(A) op(B) is computed as column-major
// C^T = op(B)^T op(A)^T: the operands swap places and keep their transpose flags.
//
// Row-major C[M, N] = alpha * op(A)[M, K] @ op(B)[K, N] + beta * C, where op(X) is X or X^T
// as `transpose_a` / `transpose_b` say and lda, ldb, ldc are the row strides of the matrices as
// stored. `batch` such products with element strides stride_a/b/c between them (1 for a plain
// GEMM). Inputs and output in T (float or bf16), products summed in float.
template <typename T>
void gemm_row_major(const CudaContext& ctx, bool transpose_a, bool transpose_b, int M, int N, int K,
                    float alpha, const T* A, int lda, long long stride_a, const T* B, int ldb,
                    long long stride_b, float beta, T* C, int ldc, long long stride_c, int batch);

template <typename T>
constexpr cudaDataType_t cuda_data_type();
template <>
constexpr cudaDataType_t cuda_data_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t cuda_data_type<__nv_bfloat16>() {
  return CUDA_R_16BF;
}

}  // namespace weft::kernels::cuda::detail
