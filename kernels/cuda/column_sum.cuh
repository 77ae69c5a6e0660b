#pragma once
// Internal to kernels/cuda: sums down the columns of a row-major [rows, cols] matrix, the
// shape of every bias and LayerNorm-gain gradient. Deterministic (a fixed summation order, no
// atomics), f32 accumulation, one rounding into the output.
#include "kernels/cuda/device_math.cuh"

namespace weft::kernels::cuda::detail {

// A block is kColumnTile x kRowLanes threads over kColumnTile adjacent columns: lane x of each
// warp takes column x, so a warp reads 32 adjacent values of one row (coalesced); warp y takes
// rows y, y + kRowLanes, ...; the kRowLanes partial sums then meet in shared memory.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 32;

inline unsigned column_tiles(int cols) { return (cols + kColumnTile - 1) / kColumnTile; }

// Sums value(r, c) over rows r for kSums quantities at once (LayerNorm needs two from one
// pass over its inputs); `value(r, c, float (&v)[kSums])` fills v. Call from every thread of a
// block of dim3(kColumnTile, kRowLanes), column_tiles(cols) blocks. Returns true on the one
// thread per column that holds the totals, column blockIdx.x * kColumnTile + threadIdx.x.
template <int kSums, typename Value>
__device__ bool column_totals(int rows, int cols, Value value, float (&total)[kSums]) {
  __shared__ float partial[kSums][kRowLanes][kColumnTile + 1];  // +1: no bank conflicts
  const int c = blockIdx.x * kColumnTile + threadIdx.x;
  float sum[kSums] = {};
  if (c < cols) {
    for (int r = threadIdx.y; r < rows; r += kRowLanes) {
      float v[kSums];
      value(r, c, v);
      for (int k = 0; k < kSums; k++) sum[k] += v[k];
    }
  }
  for (int k = 0; k < kSums; k++) partial[k][threadIdx.y][threadIdx.x] = sum[k];
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return false;
  for (int k = 0; k < kSums; k++) {
    total[k] = 0.0f;
    for (int y = 0; y < kRowLanes; y++) total[k] += partial[k][y][threadIdx.x];
  }
  return true;
}

}  // namespace weft::kernels::cuda::detail
