#include <cstdint>
#include <memory>
#include <type_traits>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/column_sum.cuh"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/matmul.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

// Owners of cuBLASLt's descriptor handles.
template <typename Handle, cublasStatus_t (*kDestroy)(Handle)>
struct LtDestroy {
  void operator()(Handle h) const { kDestroy(h); }
};
using MatmulDesc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>,
                                   LtDestroy<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>>;
using MatrixLayout =
    std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>,
                    LtDestroy<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>>;
using MatmulPreference =
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                    LtDestroy<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>>;

template <typename V>
void set_desc(const MatmulDesc& desc, cublasLtMatmulDescAttributes_t attribute, const V& value) {
  WEFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.get(), attribute, &value, sizeof(value)));
}

template <typename V>
void set_preference(const MatmulPreference& pref, cublasLtMatmulPreferenceAttributes_t attribute,
                    const V& value) {
  WEFT_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref.get(), attribute, &value, sizeof(value)));
}

// Column-major layout of a stored matrix (rows x cols, column stride ld).
MatrixLayout layout(cudaDataType_t type, int rows, int cols, int ld) {
  cublasLtMatrixLayout_t raw = nullptr;
  WEFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&raw, type, rows, cols, ld));
  return MatrixLayout(raw);
}

// The largest power of two (up to 256) that divides the address. cuBLASLt assumes 256-byte
// aligned operands unless told otherwise, and a kernel picked on that assumption faults on a
// pointer into the middle of a buffer.
uint32_t alignment_of(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  const uintptr_t lowest_bit = address & (~address + 1);
  return address == 0 || lowest_bit > 256 ? 256u : static_cast<uint32_t>(lowest_bit);
}

// out = inp @ weight^T (+ bias) in one cuBLASLt call, the bias added in the epilogue while the
// tile is still in registers (a separate pass would read and write all of out again). Returns
// false where cuBLASLt offers no algorithm for these shapes and alignments, or the bias is not
// 16-byte aligned (which its bias epilogue needs); the caller then takes the plain path.
template <typename T>
bool forward_fused(const CudaContext& ctx, T* out, const T* inp, const T* weight, const T* bias,
                   int BT, int C, int OC) {
  if (bias != nullptr && alignment_of(bias) < 16) return false;
  constexpr cudaDataType_t type = detail::cuda_data_type<T>();
  const detail::BlasHandles& handles = ctx.blas();

  cublasLtMatmulDesc_t raw_desc = nullptr;
  WEFT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&raw_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const MatmulDesc desc(raw_desc);
  // In cuBLASLt's column-major terms: D[OC, BT] = op(A)[OC, C] @ B[C, BT], where A is
  // weight's bytes read column-major ([C, OC], each row of weight a column) and op transposes
  // it back; B is inp's bytes ([C, BT]) and D is out's ([OC, BT]). The epilogue's bias runs
  // along D's rows: one value per output channel.
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
  if (bias != nullptr) {
    set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
    set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(bias));
  }
  const MatrixLayout a = layout(type, C, OC, C);
  const MatrixLayout b = layout(type, C, BT, C);
  const MatrixLayout d = layout(type, OC, BT, OC);

  cublasLtMatmulPreference_t raw_pref = nullptr;
  WEFT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&raw_pref));
  const MatmulPreference pref(raw_pref);
  set_preference(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, handles.workspace_bytes);
  set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(weight));
  set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(inp));
  set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(out));
  set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(out));

  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handles.lt, desc.get(), a.get(), b.get(), d.get(), d.get(),
                                     pref.get(), 1, &heuristic, &found);
  if (status != CUBLAS_STATUS_SUCCESS || found == 0) return false;

  const float alpha = 1.0f, beta = 0.0f;
  WEFT_CUBLAS_CHECK(cublasLtMatmul(handles.lt, desc.get(), &alpha, weight, a.get(), inp, b.get(),
                                   &beta, out, d.get(), out, d.get(), &heuristic.algo,
                                   handles.workspace, handles.workspace_bytes, ctx.stream()));
  return true;
}

template <typename T>
__global__ void add_bias_kernel(T* out, const T* bias, size_t rows, int OC) {
  const size_t n = rows * OC;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = from_float<T>(to_float(out[i]) + to_float(bias[i % OC]));
  }
}

template <typename T>
__global__ void __launch_bounds__(detail::kColumnTile* detail::kRowLanes)
    bias_grad_kernel(T* dbias, const T* dout, int rows, int OC) {
  float total[1];
  auto value = [&](int r, int c, float(&v)[1]) {
    v[0] = to_float(dout[static_cast<size_t>(r) * OC + c]);
  };
  if (detail::column_totals<1>(rows, OC, value, total)) {
    const int c = blockIdx.x * detail::kColumnTile + threadIdx.x;
    dbias[c] = from_float<T>(to_float(dbias[c]) + total[0]);
  }
}

template <typename T>
void forward(const CudaContext& ctx, T* out, const T* inp, const T* weight, const T* bias, int B,
             int T_, int C, int OC) {
  const int BT = B * T_;
  if (BT == 0 || OC == 0) return;
  if (C > 0 && forward_fused(ctx, out, inp, weight, bias, BT, C, OC)) return;
  // out[BT, OC] = inp[BT, C] @ weight[OC, C]^T, then the bias in a second pass.
  detail::gemm_row_major<T>(ctx, false, true, BT, OC, C, 1.0f, inp, C, 0, weight, C, 0, 0.0f, out,
                            OC, 0, 1);
  if (bias != nullptr) {
    constexpr int kThreads = 256;
    const size_t n = static_cast<size_t>(BT) * OC;
    add_bias_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(out, bias, BT,
                                                                                  OC);
    WEFT_CUDA_CHECK_LAUNCH("add_bias_kernel");
  }
}

template <typename T>
void backward(const CudaContext& ctx, T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
              const T* weight, int B, int T_, int C, int OC) {
  const int BT = B * T_;
  if (BT == 0 || OC == 0 || C == 0) return;
  // dinp[BT, C] += dout[BT, OC] @ weight[OC, C]
  if (dinp != nullptr) {
    detail::gemm_row_major<T>(ctx, false, false, BT, C, OC, 1.0f, dout, OC, 0, weight, C, 0, 1.0f,
                              dinp, C, 0, 1);
  }
  // dweight[OC, C] += dout[BT, OC]^T @ inp[BT, C]
  if (dweight != nullptr) {
    detail::gemm_row_major<T>(ctx, true, false, OC, C, BT, 1.0f, dout, OC, 0, inp, C, 0, 1.0f,
                              dweight, C, 0, 1);
  }
  if (dbias != nullptr) {
    bias_grad_kernel<<<detail::column_tiles(OC), dim3(detail::kColumnTile, detail::kRowLanes), 0,
                       ctx.stream()>>>(dbias, dout, BT, OC);
    WEFT_CUDA_CHECK_LAUNCH("bias_grad_kernel");
  }
}

}  // namespace

void matmul_forward(const CudaContext& ctx, float* out, const float* inp, const float* weight,
                    const float* bias, int B, int T, int C, int OC) {
  forward(ctx, out, inp, weight, bias, B, T, C, OC);
}
void matmul_forward(const CudaContext& ctx, __nv_bfloat16* out, const __nv_bfloat16* inp,
                    const __nv_bfloat16* weight, const __nv_bfloat16* bias, int B, int T, int C,
                    int OC) {
  forward(ctx, out, inp, weight, bias, B, T, C, OC);
}

void matmul_backward(const CudaContext& ctx, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int B, int T, int C,
                     int OC) {
  backward(ctx, dinp, dweight, dbias, dout, inp, weight, B, T, C, OC);
}
void matmul_backward(const CudaContext& ctx, __nv_bfloat16* dinp, __nv_bfloat16* dweight,
                     __nv_bfloat16* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                     const __nv_bfloat16* weight, int B, int T, int C, int OC) {
  backward(ctx, dinp, dweight, dbias, dout, inp, weight, B, T, C, OC);
}

}  // namespace weft::kernels::cuda
