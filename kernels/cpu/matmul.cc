#include "kernels/matmul.h"

#include <cblas.h>

#include <cstddef>
#include <string>

#include "kernels/cpu/vector_math.h"

namespace weft::kernels::cpu {
namespace {

// Row i of out starts as a copy of bias, so one sgemm with beta = 1 adds the product onto it.
WEFT_KERNEL_PER_ISA void broadcast_rows(float* out, const float* bias, int rows, int cols) {
  for (int i = 0; i < rows; i++) {
    float* row = out + static_cast<size_t>(i) * cols;
    for (int o = 0; o < cols; o++) row[o] = bias[o];
  }
}

// dbias[o] += sum_i dout[i, o]: walks dout row by row so the inner loop is contiguous.
WEFT_KERNEL_PER_ISA void add_column_sums(float* dbias, const float* dout, int rows, int cols) {
  for (int i = 0; i < rows; i++) {
    const float* row = dout + static_cast<size_t>(i) * cols;
    for (int o = 0; o < cols; o++) dbias[o] += row[o];
  }
}

}  // namespace

void matmul_forward(const CpuContext& ctx, float* out, const float* inp, const float* weight,
                    const float* bias, int B, int T, int C, int OC) {
  BlasThreads threads(ctx.threads());
  const int rows = B * T;
  float beta = 0.0f;
  if (bias != nullptr) {
    broadcast_rows(out, bias, rows, OC);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, OC, C, 1.0f, inp, C, weight, C, beta,
              out, OC);
}

void matmul_backward(const CpuContext& ctx, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int B, int T, int C,
                     int OC) {
  BlasThreads threads(ctx.threads());
  const int rows = B * T;
  if (dinp != nullptr) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, OC, 1.0f, dout, OC, weight, C,
                1.0f, dinp, C);
  }
  if (dweight != nullptr) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, rows, 1.0f, dout, OC, inp, C,
                1.0f, dweight, C);
  }
  if (dbias != nullptr) add_column_sums(dbias, dout, rows, OC);
}

const char* blas_core_name() { return openblas_get_corename(); }

const char* blas_coretype_upgrade() {
  const std::string core = openblas_get_corename();
  for (const char* avx512_core : {"SkylakeX", "Cooperlake", "SapphireRapids"}) {
    if (core == avx512_core) return nullptr;
  }
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  return avx512 ? "SkylakeX" : nullptr;
}

}  // namespace weft::kernels::cpu
