#pragma once
// Reads and writes elements of any DType as double, so one reference implementation in a test
// serves every dtype. Test data are small integers, exact in every dtype (bf16 included), so
// results can be compared exactly.
#include <cstdint>
#include <cstring>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/half.h"

namespace weft::testing {

inline double get_value(const void* p, DType t, size_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
    case DType::f16: return static_cast<float>(static_cast<const f16*>(p)[i]);
    case DType::bf16: return static_cast<float>(static_cast<const bf16*>(p)[i]);
  }
  return 0;
}

inline void set_value(void* p, DType t, size_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::i32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); break;
    case DType::f16: static_cast<f16*>(p)[i] = f16(static_cast<float>(v)); break;
    case DType::bf16: static_cast<bf16*>(p)[i] = bf16(static_cast<float>(v)); break;
  }
}

// Rank r's element i: small integers (0..3 for u8, -2..2 otherwise), different per rank.
inline double test_value(int rank, size_t i, DType t) {
  int v = static_cast<int>((static_cast<size_t>(rank) * 7 + i * 3) % 5);
  return t == DType::u8 ? v % 4 : v - 2;
}

inline std::vector<char> make_data(int rank, size_t count, DType t, size_t offset = 0) {
  std::vector<char> buf(count * dtype_size(t) + 1);
  for (size_t i = 0; i < count; i++) set_value(buf.data(), t, i, test_value(rank, i + offset, t));
  return buf;
}

// The reduction over ranks 0..n-1 of test_value(r, i), as the collective must produce it.
inline double reference(int n, size_t i, DType t, ReduceOp op) {
  double acc = test_value(0, i, t);
  for (int r = 1; r < n; r++) {
    double v = test_value(r, i, t);
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg: acc += v; break;
      case ReduceOp::prod: acc *= v; break;
      case ReduceOp::max: acc = v > acc ? v : acc; break;
      case ReduceOp::min: acc = v < acc ? v : acc; break;
    }
  }
  if (op == ReduceOp::avg) {
    if (t == DType::f64) return acc / n;
    if (dtype_is_float(t)) return static_cast<double>(static_cast<float>(acc) / n);
    return static_cast<double>(static_cast<int64_t>(acc) / n);
  }
  return acc;
}

// Integer-typed values wrap like the hardware does (u8 arithmetic is modulo 256).
inline double as_stored(double v, DType t) {
  std::vector<char> buf(8);
  set_value(buf.data(), t, 0, v);
  return get_value(buf.data(), t, 0);
}

}  // namespace weft::testing
