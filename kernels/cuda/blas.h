#pragma once
// Internal to kernels/cuda: cuBLAS and cuBLASLt handles, and a row-major GEMM.
//
// A cuBLAS handle costs milliseconds to create and is not safe to use from two threads at
// once, so each thread gets one per device, made on first use and destroyed when the thread
// ends; each call sets the caller's stream on it. cuBLASLt wants a workspace too, and two
// matmuls running at once on different streams must not share one, so there is one workspace
// per (thread, device, stream), also made on first use: the first matmul on a new stream
// allocates, none after it does.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace weft::kernels::cuda::detail {

// Throws weft::Error(Internal) naming the cuBLAS call (its source text) and cuBLAS's status.
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cublas_error(status, call, file, line);
}
#define WEFT_CUBLAS_CHECK(call) \
  ::weft::kernels::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)

// This thread's cuBLAS handle for the current device, set to `stream`.
cublasHandle_t cublas_for(cudaStream_t stream);

struct LtContext {
  cublasLtHandle_t handle;
  void* workspace;
  size_t workspace_bytes;
};
// This thread's cuBLASLt handle for the current device and a workspace owned by `stream`.
LtContext cublaslt_for(cudaStream_t stream);

// cuBLAS speaks column-major; weft's tensors are row-major. The same bytes read column-major
// are the transpose, so row-major C = op(A) op(B) is computed as column-major
// C^T = op(B)^T op(A)^T: the operands swap places and keep their transpose flags.
//
// Row-major C[M, N] = alpha * op(A)[M, K] @ op(B)[K, N] + beta * C, where op(X) is X or X^T
// as `transpose_a` / `transpose_b` say and lda, ldb, ldc are the row strides of the matrices as
// stored. `batch` such products with element strides stride_a/b/c between them (1 for a plain
// GEMM). Inputs and output in T (float or bf16), products summed in float.
template <typename T>
void gemm_row_major(cudaStream_t stream, bool transpose_a, bool transpose_b, int M, int N, int K,
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
