#pragma once
// Internal to kernels/cuda: what every kernel file needs on the device. Storage types (float,
// bf16, f16) convert to and from float here, so a kernel templated on its storage type reads
// the same for each; arithmetic always happens in float. Warp and block reductions, and the
// launch-size rule for grid-stride loops.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>

namespace weft::kernels::cuda::detail {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

// Round to nearest even, the same rounding as weft::bf16 / weft::f16 on the host.
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
  for (int offset = 16; offset > 0; offset /= 2) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  }
  return x;
}

constexpr int kWarpSize = 32;

// Blocks for a grid-stride loop over n items with `threads` per block: enough to fill any GPU
// many times over, capped so a huge n does not ask for more blocks than a launch may have
// (each thread then loops).
inline unsigned grid_for(size_t n, int threads) {
  constexpr size_t kMaxBlocks = 65535;
  const size_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? (blocks > 0 ? blocks : 1) : kMaxBlocks);
}

// Blocks that give each of `rows` one warp, `threads / 32` warps per block.
inline unsigned grid_for_warp_rows(size_t rows, int threads) {
  const size_t warps_per_block = threads / kWarpSize;
  return static_cast<unsigned>((rows + warps_per_block - 1) / warps_per_block);
}

}  // namespace weft::kernels::cuda::detail
