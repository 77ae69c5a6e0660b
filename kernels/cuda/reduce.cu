#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/reduce.h"
#include "runtime/error.h"

namespace weft::kernels::cuda {
namespace {

using detail::from_float;
using detail::to_float;

// These kernels are bound by memory bandwidth, so the whole design is about bytes in flight:
// each load moves 16 bytes (one Pack), and each thread issues kUnroll of them before using
// any, so a warp has 4 x 512 bytes outstanding per operand. Loads and stores carry the
// streaming hint (evict first): a collective's chunk is read once, and keeping it in L2 would
// only push out data that is reused.
constexpr int kThreads = 256;
constexpr int kUnroll = 4;
constexpr size_t kPackBytes = 16;

template <typename T, int kWidth>
struct Pack {
  T v[kWidth];
};

template <typename T, int kWidth>
__device__ __forceinline__ Pack<T, kWidth> load_pack(const T* p) {
  Pack<T, kWidth> pack;
  if constexpr (sizeof(pack) == kPackBytes) {
    const uint4 raw = __ldcs(reinterpret_cast<const uint4*>(p));
    memcpy(&pack, &raw, kPackBytes);  // a register reinterpretation, no memory traffic
  } else {
    for (int k = 0; k < kWidth; k++) pack.v[k] = p[k];
  }
  return pack;
}

template <typename T, int kWidth>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, kWidth>& pack) {
  if constexpr (sizeof(pack) == kPackBytes) {
    uint4 raw;
    memcpy(&raw, &pack, kPackBytes);
    __stcs(reinterpret_cast<uint4*>(p), raw);
  } else {
    for (int k = 0; k < kWidth; k++) p[k] = pack.v[k];
  }
}

// f16 and bf16 are combined in float and rounded once; every other type in itself.
template <typename T>
struct Arith {
  using Compute = T;
  __device__ static Compute widen(T x) { return x; }
  __device__ static T narrow(Compute x) { return x; }
};
template <>
struct Arith<__half> {
  using Compute = float;
  __device__ static float widen(__half x) { return to_float(x); }
  __device__ static __half narrow(float x) { return from_float<__half>(x); }
};
template <>
struct Arith<__nv_bfloat16> {
  using Compute = float;
  __device__ static float widen(__nv_bfloat16 x) { return to_float(x); }
  __device__ static __nv_bfloat16 narrow(float x) { return from_float<__nv_bfloat16>(x); }
};

// The operators, written as the CPU reference writes them (std::max is `a < b ? b : a`), so
// that NaNs and signed zeros come out the same. The cast after + and * is what wraps u8.
struct Sum {
  template <typename C>
  __device__ C operator()(C a, C b) const {
    return static_cast<C>(a + b);
  }
};
struct Prod {
  template <typename C>
  __device__ C operator()(C a, C b) const {
    return static_cast<C>(a * b);
  }
};
struct Max {
  template <typename C>
  __device__ C operator()(C a, C b) const {
    return a < b ? b : a;
  }
};
struct Min {
  template <typename C>
  __device__ C operator()(C a, C b) const {
    return b < a ? b : a;
  }
};

template <typename T, typename Op>
__device__ __forceinline__ T combine(T a, T b, Op op) {
  using A = Arith<T>;
  return A::narrow(op(A::widen(a), A::widen(b)));
}

template <typename T>
__device__ __forceinline__ T divide(T x, int divisor) {
  if constexpr (sizeof(typename Arith<T>::Compute) != sizeof(T)) {  // f16, bf16
    return from_float<T>(to_float(x) / static_cast<float>(divisor));
  } else if constexpr (std::is_floating_point_v<T>) {  // f32, f64: IEEE division
    return x / static_cast<T>(divisor);
  } else {  // integers: C++ division truncates toward zero
    return static_cast<T>(x / divisor);
  }
}

// How `count` elements split for packed access: `head` single elements up to the first 16-byte
// boundary, `packs` whole Packs, then a tail of fewer than a Pack's worth. With kWidth = 1
// (pointers whose offsets from a 16-byte boundary differ) everything is one-element packs.
struct Split {
  size_t head = 0;
  size_t packs = 0;
  size_t count = 0;
};

// The first pack this thread handles: a block covers kUnroll * blockDim consecutive packs per
// round, thread t taking t, t + blockDim, ... so that each load instruction is coalesced.
__device__ __forceinline__ size_t first_pack() {
  return static_cast<size_t>(blockIdx.x) * blockDim.x * kUnroll + threadIdx.x;
}

template <typename T, int kWidth, typename Op>
__global__ void __launch_bounds__(kThreads)
    reduce_kernel(T* out, const T* a, const T* b, Split split, Op op) {
  const size_t thread = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (thread < split.head) out[thread] = combine(a[thread], b[thread], op);

  T* out_body = out + split.head;
  const T* a_body = a + split.head;
  const T* b_body = b + split.head;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x * kUnroll;
  for (size_t first = first_pack(); first < split.packs; first += stride) {
    Pack<T, kWidth> pa[kUnroll], pb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const size_t i = first + static_cast<size_t>(u) * blockDim.x;
      if (i < split.packs) {
        pa[u] = load_pack<T, kWidth>(a_body + i * kWidth);
        pb[u] = load_pack<T, kWidth>(b_body + i * kWidth);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const size_t i = first + static_cast<size_t>(u) * blockDim.x;
      if (i < split.packs) {
#pragma unroll
        for (int k = 0; k < kWidth; k++) pa[u].v[k] = combine(pa[u].v[k], pb[u].v[k], op);
        store_pack<T, kWidth>(out_body + i * kWidth, pa[u]);
      }
    }
  }

  const size_t tail_begin = split.head + split.packs * kWidth;
  if (thread < split.count - tail_begin) {
    const size_t i = tail_begin + thread;
    out[i] = combine(a[i], b[i], op);
  }
}

template <typename T, int kWidth>
__global__ void __launch_bounds__(kThreads) scale_kernel(T* data, Split split, int divisor) {
  const size_t thread = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (thread < split.head) data[thread] = divide(data[thread], divisor);

  T* body = data + split.head;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x * kUnroll;
  for (size_t first = first_pack(); first < split.packs; first += stride) {
    Pack<T, kWidth> p[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const size_t i = first + static_cast<size_t>(u) * blockDim.x;
      if (i < split.packs) p[u] = load_pack<T, kWidth>(body + i * kWidth);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const size_t i = first + static_cast<size_t>(u) * blockDim.x;
      if (i < split.packs) {
#pragma unroll
        for (int k = 0; k < kWidth; k++) p[u].v[k] = divide(p[u].v[k], divisor);
        store_pack<T, kWidth>(body + i * kWidth, p[u]);
      }
    }
  }

  const size_t tail_begin = split.head + split.packs * kWidth;
  if (thread < split.count - tail_begin) {
    data[tail_begin + thread] = divide(data[tail_begin + thread], divisor);
  }
}

uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

void check_element_aligned(const void* p, size_t element_size, const char* what, const char* op,
                           DType dtype) {
  if (address(p) % element_size != 0) {
    throw Error(ErrorCode::InvalidArgument,
                std::string("kernels::cuda::") + op + ": `" + what + "` (" +
                    std::to_string(address(p)) + ") is not aligned to the " +
                    std::to_string(element_size) + "-byte elements of " + dtype_name(dtype) +
                    "; pass a buffer offset by whole elements");
  }
}

// Packs of 16 bytes when every pointer sits at the same offset from a 16-byte boundary (then
// one head brings them all to the boundary together), else single elements.
bool packable(std::initializer_list<const void*> pointers) {
  const uintptr_t offset = address(*pointers.begin()) % kPackBytes;
  for (const void* p : pointers) {
    if (address(p) % kPackBytes != offset) return false;
  }
  return true;
}

template <typename T, int kWidth>
Split split_for(const void* first, size_t count) {
  Split split;
  split.count = count;
  if constexpr (kWidth > 1) {
    const uintptr_t offset = address(first) % kPackBytes;
    split.head = offset == 0 ? 0 : (kPackBytes - offset) / sizeof(T);
    if (split.head > count) split.head = count;
  }
  split.packs = (count - split.head) / kWidth;
  return split;
}

unsigned blocks_for(const Split& split) {
  // The head and tail need at least one block; the body wants a block per kThreads * kUnroll
  // packs, capped (each thread then loops) to keep the grid within any launch limit.
  return detail::grid_for((split.packs + kUnroll - 1) / kUnroll, kThreads);
}

template <typename T, typename Op>
void launch_reduce(void* out, const void* a, const void* b, size_t count, Op op,
                   cudaStream_t stream) {
  constexpr int kWidth = kPackBytes / sizeof(T);
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  if (packable({out, a, b})) {
    const Split split = split_for<T, kWidth>(out, count);
    reduce_kernel<T, kWidth><<<blocks_for(split), kThreads, 0, stream>>>(o, x, y, split, op);
  } else {
    const Split split = split_for<T, 1>(out, count);
    reduce_kernel<T, 1><<<blocks_for(split), kThreads, 0, stream>>>(o, x, y, split, op);
  }
  WEFT_CUDA_CHECK_LAUNCH("kernels::cuda::reduce");
}

template <typename T>
void reduce_typed(void* out, const void* a, const void* b, size_t count, ReduceOp op,
                  cudaStream_t stream) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      return launch_reduce<T>(out, a, b, count, Sum{}, stream);
    case ReduceOp::prod:
      return launch_reduce<T>(out, a, b, count, Prod{}, stream);
    case ReduceOp::max:
      return launch_reduce<T>(out, a, b, count, Max{}, stream);
    case ReduceOp::min:
      return launch_reduce<T>(out, a, b, count, Min{}, stream);
  }
  throw Error(ErrorCode::InvalidArgument,
              "kernels::cuda::reduce: unknown ReduceOp " + std::to_string(static_cast<int>(op)));
}

template <typename T>
void scale_typed(void* data, size_t count, int divisor, cudaStream_t stream) {
  constexpr int kWidth = kPackBytes / sizeof(T);
  T* d = static_cast<T*>(data);
  // One pointer is always "packable": the head aligns it.
  const Split split = split_for<T, kWidth>(data, count);
  scale_kernel<T, kWidth><<<blocks_for(split), kThreads, 0, stream>>>(d, split, divisor);
  WEFT_CUDA_CHECK_LAUNCH("kernels::cuda::scale_down");
}

}  // namespace

void reduce(void* out, const void* a, const void* b, size_t count, DType dtype, ReduceOp op,
            cudaStream_t stream) {
  if (count == 0) return;
  const size_t element = dtype_size(dtype);
  check_element_aligned(out, element, "out", "reduce", dtype);
  check_element_aligned(a, element, "a", "reduce", dtype);
  check_element_aligned(b, element, "b", "reduce", dtype);
  switch (dtype) {
    case DType::f32:
      return reduce_typed<float>(out, a, b, count, op, stream);
    case DType::f64:
      return reduce_typed<double>(out, a, b, count, op, stream);
    case DType::i32:
      return reduce_typed<int32_t>(out, a, b, count, op, stream);
    case DType::i64:
      return reduce_typed<int64_t>(out, a, b, count, op, stream);
    case DType::u8:
      return reduce_typed<uint8_t>(out, a, b, count, op, stream);
    case DType::f16:
      return reduce_typed<__half>(out, a, b, count, op, stream);
    case DType::bf16:
      return reduce_typed<__nv_bfloat16>(out, a, b, count, op, stream);
  }
  throw Error(ErrorCode::InvalidArgument,
              "kernels::cuda::reduce: unknown DType " + std::to_string(static_cast<int>(dtype)));
}

void scale_down(void* data, size_t count, DType dtype, int divisor, cudaStream_t stream) {
  if (divisor <= 0) {
    throw Error(ErrorCode::InvalidArgument,
                "kernels::cuda::scale_down: divisor " + std::to_string(divisor) +
                    " is not positive; an average divides by the number of ranks (>= 1)");
  }
  if (count == 0) return;
  check_element_aligned(data, dtype_size(dtype), "data", "scale_down", dtype);
  switch (dtype) {
    case DType::f32:
      return scale_typed<float>(data, count, divisor, stream);
    case DType::f64:
      return scale_typed<double>(data, count, divisor, stream);
    case DType::i32:
      return scale_typed<int32_t>(data, count, divisor, stream);
    case DType::i64:
      return scale_typed<int64_t>(data, count, divisor, stream);
    case DType::u8:
      return scale_typed<uint8_t>(data, count, divisor, stream);
    case DType::f16:
      return scale_typed<__half>(data, count, divisor, stream);
    case DType::bf16:
      return scale_typed<__nv_bfloat16>(data, count, divisor, stream);
  }
  throw Error(ErrorCode::InvalidArgument, "kernels::cuda::scale_down: unknown DType " +
                                              std::to_string(static_cast<int>(dtype)));
}

}  // namespace weft::kernels::cuda
