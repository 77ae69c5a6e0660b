#include "kernels/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "kernels/cpu/parallel_for.h"
#include "kernels/cpu/vector_math.h"

namespace weft::kernels::cpu {
namespace {

// Rows are processed in blocks of this many query positions. A block of rows [r0, r1) only
// sees keys [0, r1), so each product is an sgemm over that prefix and the masked upper
// triangle beyond the block is never computed: for large T that halves the work. 64 rows keeps
// each sgemm big enough for the BLAS to run at speed.
constexpr int kRowBlock = 64;

// Starting a thread costs tens of microseconds, so each thread gets at least this much work
// (about 0.1 ms at BLAS speed) or the call stays on fewer threads.
constexpr double kMinFlopsPerThread = 16e6;

// Threads for B x NH heads of T positions and hs channels: the context's thread count, fewer
// when the work is small. The forward's two causal products are ~T^2 hs flops each.
int head_threads(int requested, int B, int NH, int T, int hs) {
  const double flops = 2.0 * B * NH * static_cast<double>(T) * T * hs;
  return std::clamp(static_cast<int>(flops / kMinFlopsPerThread), 1, std::max(requested, 1));
}

// Row t of `scores` holds scaled logits for keys 0..t (later entries are garbage from the
// block's sgemm). Turns 0..t into softmax probabilities and zeroes t+1..T-1.
WEFT_KERNEL_PER_ISA void causal_softmax_rows(float* scores, int r0, int r1, int T) {
  for (int t = r0; t < r1; t++) {
    float* row = scores + static_cast<size_t>(t) * T;
    const int n = t + 1;
    float max = row[0];
#pragma omp simd reduction(max : max)
    for (int j = 0; j < n; j++) max = std::max(max, row[j]);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
      row[j] = detail::exp_approx(row[j] - max);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) row[j] *= inv;
    for (int j = n; j < T; j++) row[j] = 0.0f;
  }
}

// Softmax backward in place: on entry row t of `grad` holds dP (gradient w.r.t. the
// probabilities) for keys 0..t; on exit it holds dS = P * (dP - sum_j P_j dP_j), the gradient
// w.r.t. the scaled logits, with zeros above the diagonal (up to column r1 - 1, which is as
// far as the block's sgemm reads).
WEFT_KERNEL_PER_ISA void softmax_backward_rows(float* grad, const float* probs, int r0, int r1,
                                               int T) {
  for (int t = r0; t < r1; t++) {
    float* g = grad + static_cast<size_t>(t) * T;
    const float* p = probs + static_cast<size_t>(t) * T;
    const int n = t + 1;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++) dot += p[j] * g[j];
    for (int j = 0; j < n; j++) g[j] = p[j] * (g[j] - dot);
    for (int j = n; j < r1; j++) g[j] = 0.0f;
  }
}

// One (batch, head) pair: q, k, v point at its first position's channels inside qkv (rows
// 3C apart), o at its channels inside out (rows C apart), p at its T x T probabilities.
void head_forward(float* o, float* p, const float* q, const float* k, const float* v, int T, int C,
                  int hs) {
  const int qkv_stride = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int r0 = 0; r0 < T; r0 += kRowBlock) {
    const int r1 = std::min(T, r0 + kRowBlock);
    const int rows = r1 - r0;
    float* p_block = p + static_cast<size_t>(r0) * T;
    // S[r0:r1, 0:r1] = scale * Q[r0:r1] K[0:r1]^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, hs, scale,
                q + static_cast<size_t>(r0) * qkv_stride, qkv_stride, k, qkv_stride, 0.0f, p_block,
                T);
    causal_softmax_rows(p, r0, r1, T);
    // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]  (P is zero above the diagonal)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, r1, 1.0f, p_block, T, v,
                qkv_stride, 0.0f, o + static_cast<size_t>(r0) * C, C);
  }
}

// Backward of head_forward; dq, dk, dv, dout point like q, k, v, o; ds is this head's T x T
// scratch.
void head_backward(float* dq, float* dk, float* dv, float* ds, const float* dout, const float* q,
                   const float* k, const float* v, const float* p, int T, int C, int hs) {
  const int qkv_stride = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int r0 = 0; r0 < T; r0 += kRowBlock) {
    const int r1 = std::min(T, r0 + kRowBlock);
    const int rows = r1 - r0;
    const size_t q_off = static_cast<size_t>(r0) * qkv_stride;
    const float* do_block = dout + static_cast<size_t>(r0) * C;
    const float* p_block = p + static_cast<size_t>(r0) * T;
    float* ds_block = ds + static_cast<size_t>(r0) * T;
    // dV[0:r1] += P[r0:r1, 0:r1]^T dO[r0:r1]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, rows, 1.0f, p_block, T, do_block,
                C, 1.0f, dv, qkv_stride);
    // dP[r0:r1, 0:r1] = dO[r0:r1] V[0:r1]^T, then dS in place.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, hs, 1.0f, do_block, C, v,
                qkv_stride, 0.0f, ds_block, T);
    softmax_backward_rows(ds, p, r0, r1, T);
    // dQ[r0:r1] += scale * dS[r0:r1, 0:r1] K[0:r1]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, r1, scale, ds_block, T, k,
                qkv_stride, 1.0f, dq + q_off, qkv_stride);
    // dK[0:r1] += scale * dS[r0:r1, 0:r1]^T Q[r0:r1]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, rows, scale, ds_block, T,
                q + q_off, qkv_stride, 1.0f, dk, qkv_stride);
  }
}

}  // namespace

// The (batch, head) pairs are independent and each one's sgemms are small (64 x T x hs), too
// small for OpenBLAS to split well: its threads' hand-offs cost more than the product. So the
// pairs are spread over the context's threads, each thread running whole heads with
// single-threaded sgemm.
void attention_forward(const CpuContext& ctx, float* out, float* att, const float* qkv, int B,
                       int T, int C, int NH) {
  const int hs = C / NH;
  BlasThreads single(1);
  auto heads = [&](int begin, int end) {
    detail::FlushDenormals flush;  // per thread: a peaked softmax has denormal tails
    for (int bh = begin; bh < end; bh++) {
      const int b = bh / NH, h = bh % NH;
      const float* qkv_b = qkv + static_cast<size_t>(b) * T * 3 * C;
      head_forward(out + static_cast<size_t>(b) * T * C + h * hs,
                   att + static_cast<size_t>(bh) * T * T, qkv_b + h * hs, qkv_b + C + h * hs,
                   qkv_b + 2 * C + h * hs, T, C, hs);
    }
  };
  detail::parallel_for(B * NH, head_threads(ctx.threads(), B, NH, T, hs), heads);
}

void attention_backward(const CpuContext& ctx, float* dqkv, float* datt, const float* dout,
                        const float* qkv, const float* att, int B, int T, int C, int NH) {
  const int hs = C / NH;
  BlasThreads single(1);
  auto heads = [&](int begin, int end) {
    detail::FlushDenormals flush;
    for (int bh = begin; bh < end; bh++) {
      const int b = bh / NH, h = bh % NH;
      const float* q = qkv + static_cast<size_t>(b) * T * 3 * C + h * hs;
      float* dq = dqkv + static_cast<size_t>(b) * T * 3 * C + h * hs;
      const size_t head = static_cast<size_t>(bh) * T * T;
      head_backward(dq, dq + C, dq + 2 * C, datt + head,
                    dout + static_cast<size_t>(b) * T * C + h * hs, q, q + C, q + 2 * C, att + head,
                    T, C, hs);
    }
  };
  detail::parallel_for(B * NH, head_threads(ctx.threads(), B, NH, T, hs), heads);
}

}  // namespace weft::kernels::cpu
