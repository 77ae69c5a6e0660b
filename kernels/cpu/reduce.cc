#include "kernels/reduce.h"

#include <algorithm>
#include <cstdint>

#include "runtime/error.h"
#include "runtime/half.h"

namespace weft::kernels::cpu {
namespace {

// The loops are force-inlined into reduce(), which GCC compiles once per ISA (target_clones),
// so the same plain loop is vectorised for AVX-512, AVX2 and baseline x86-64. `out` may alias
// `a` or `b` element for element, which a pure elementwise loop tolerates.
template <typename T>
[[gnu::always_inline]] inline void reduce_typed(void* out_v, const void* a_v, const void* b_v,
                                                size_t n, ReduceOp op) {
  T* out = static_cast<T*>(out_v);
  const T* a = static_cast<const T*>(a_v);
  const T* b = static_cast<const T*>(b_v);
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      for (size_t i = 0; i < n; i++) out[i] = static_cast<T>(a[i] + b[i]);
      break;
    case ReduceOp::prod:
      for (size_t i = 0; i < n; i++) out[i] = static_cast<T>(a[i] * b[i]);
      break;
    case ReduceOp::max:
      for (size_t i = 0; i < n; i++) out[i] = std::max(a[i], b[i]);
      break;
    case ReduceOp::min:
      for (size_t i = 0; i < n; i++) out[i] = std::min(a[i], b[i]);
      break;
  }
}

// 16-bit floats: widen a block to f32, combine, narrow once.
template <typename H>
[[gnu::always_inline]] inline void reduce_half(void* out_v, const void* a_v, const void* b_v,
                                               size_t n, ReduceOp op) {
  H* out = static_cast<H*>(out_v);
  const H* a = static_cast<const H*>(a_v);
  const H* b = static_cast<const H*>(b_v);
  constexpr size_t kBlock = 256;
  float fa[kBlock], fb[kBlock];
  for (size_t base = 0; base < n; base += kBlock) {
    size_t m = std::min(kBlock, n - base);
    for (size_t i = 0; i < m; i++) fa[i] = static_cast<float>(a[base + i]);
    for (size_t i = 0; i < m; i++) fb[i] = static_cast<float>(b[base + i]);
    reduce_typed<float>(fa, fa, fb, m, op);
    for (size_t i = 0; i < m; i++) out[base + i] = H(fa[i]);
  }
}

template <typename T>
void scale_typed(T* data, size_t n, int divisor) {
  if constexpr (std::is_floating_point_v<T>) {
    for (size_t i = 0; i < n; i++) data[i] = data[i] / static_cast<T>(divisor);
  } else {
    for (size_t i = 0; i < n; i++) data[i] = static_cast<T>(data[i] / divisor);
  }
}

template <typename H>
void scale_half(H* data, size_t n, int divisor) {
  for (size_t i = 0; i < n; i++) data[i] = H(static_cast<float>(data[i]) / divisor);
}

}  // namespace

// ThreadSanitizer's runtime is not ready when ifunc resolvers run, so TSan builds skip cloning.
#if defined(__SANITIZE_THREAD__)
#define WEFT_CLONE_PER_ISA
#else
#define WEFT_CLONE_PER_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

WEFT_CLONE_PER_ISA void reduce(
    void* out, const void* a, const void* b, size_t count, DType dtype, ReduceOp op) {
  switch (dtype) {
    case DType::f32: return reduce_typed<float>(out, a, b, count, op);
    case DType::f64: return reduce_typed<double>(out, a, b, count, op);
    case DType::i32: return reduce_typed<int32_t>(out, a, b, count, op);
    case DType::i64: return reduce_typed<int64_t>(out, a, b, count, op);
    case DType::u8: return reduce_typed<uint8_t>(out, a, b, count, op);
    case DType::f16: return reduce_half<f16>(out, a, b, count, op);
    case DType::bf16: return reduce_half<bf16>(out, a, b, count, op);
  }
}

void scale_down(void* data, size_t count, DType dtype, int divisor) {
  if (divisor <= 0) throw Error(ErrorCode::Internal, "scale_down by a non-positive divisor");
  switch (dtype) {
    case DType::f32: return scale_typed(static_cast<float*>(data), count, divisor);
    case DType::f64: return scale_typed(static_cast<double*>(data), count, divisor);
    case DType::i32: return scale_typed(static_cast<int32_t*>(data), count, divisor);
    case DType::i64: return scale_typed(static_cast<int64_t*>(data), count, divisor);
    case DType::u8: return scale_typed(static_cast<uint8_t*>(data), count, divisor);
    case DType::f16: return scale_half(static_cast<f16*>(data), count, divisor);
    case DType::bf16: return scale_half(static_cast<bf16*>(data), count, divisor);
  }
}

}  // namespace weft::kernels::cpu
