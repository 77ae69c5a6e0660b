#pragma once
// Internal to kernels/cpu: per-ISA cloning and an exp() that GCC can vectorise.
//
// The library is built for baseline x86-64 (ranks may land on different machines), so the hot
// row loops are compiled once per ISA with target_clones and picked at load time, as
// cpu/reduce.cc does. Helpers called from a cloned function must be always_inline so that they
// are compiled inside each clone. Reductions use `#pragma omp simd reduction` (the library is
// built with -fopenmp-simd, which enables the pragma without any OpenMP runtime): GCC may then
// reorder that one sum without -ffast-math everywhere.
#include <algorithm>
#include <bit>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

// ThreadSanitizer's runtime is not ready when ifunc resolvers run, so TSan builds skip cloning.
#if defined(__SANITIZE_THREAD__)
#define WEFT_KERNEL_PER_ISA
#else
#define WEFT_KERNEL_PER_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

namespace weft::kernels::cpu::detail {

// e^x for float, within about 2 ulp of expf over the range where e^x is a normal float.
// glibc's expf is a scalar call that GCC only vectorises under -ffast-math; this is plain
// arithmetic, so a loop over it becomes SIMD. Arguments below -87.3 return about 1.2e-38 instead
// of a denormal or zero, which no softmax or sigmoid here can tell apart from zero.
[[gnu::always_inline]] inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.33654f), 88.37626f);
  // n = round(x / ln 2): adding 1.5 * 2^23 pushes the fraction out of the mantissa.
  constexpr float kRound = 12582912.0f;
  float n = (x * 1.44269504088896341f + kRound) - kRound;
  // r = x - n ln 2, with ln 2 split in two so the product is exact (Cody-Waite).
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // e^r on [-ln2/2, ln2/2]: the Cephes minimax polynomial.
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n built directly in the exponent field; n is in [-126, 127] after the clamp.
  int32_t biased = static_cast<int32_t>(n) + 127;
  return p * std::bit_cast<float>(biased << 23);
}

// While alive, the calling thread flushes denormal results to zero and reads denormal inputs as
// zero (x86 MXCSR FTZ and DAZ; elsewhere a no-op). Values below 1.2e-38 (a softmax tail, the
// sigmoid of a GELU input below -10, the square of a tiny gradient) otherwise cost a microcode
// assist per instruction: they doubled gelu_backward's time on such inputs here, and no result
// of a training step depends on them. Each kernel entry (and each thread it starts) holds one.
class FlushDenormals {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
#else
  FlushDenormals() = default;
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
#if defined(__x86_64__) || defined(__i386__)
  static constexpr unsigned kFlushToZero = 0x8000;
  static constexpr unsigned kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

}  // namespace weft::kernels::cpu::detail
