#include "bench/check_pattern.h"

#include <cstdint>

#include "runtime/half.h"

namespace weft::bench {
namespace {

void store(const Tensor& t, size_t i, double v) {
  void* p = t.data();
  switch (t.dtype()) {
    case DType::f32:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case DType::f64:
      static_cast<double*>(p)[i] = v;
      break;
    case DType::f16:
      static_cast<f16*>(p)[i] = f16(static_cast<float>(v));
      break;
    case DType::bf16:
      static_cast<bf16*>(p)[i] = bf16(static_cast<float>(v));
      break;
    case DType::i32:
      static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v);
      break;
    case DType::i64:
      static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v);
      break;
    case DType::u8:
      static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v);
      break;
  }
}

}  // namespace

void fill_pattern(const Tensor& t, int rank, size_t first_index) {
  for (size_t i = 0; i < t.numel(); ++i) store(t, i, pattern_value(rank, first_index + i));
}

void fill_constant(const Tensor& t, double value) {
  for (size_t i = 0; i < t.numel(); ++i) store(t, i, value);
}

double load_element(const Tensor& t, size_t i) {
  const void* p = t.data();
  switch (t.dtype()) {
    case DType::f32:
      return static_cast<const float*>(p)[i];
    case DType::f64:
      return static_cast<const double*>(p)[i];
    case DType::f16:
      return static_cast<float>(static_cast<const f16*>(p)[i]);
    case DType::bf16:
      return static_cast<float>(static_cast<const bf16*>(p)[i]);
    case DType::i32:
      return static_cast<const int32_t*>(p)[i];
    case DType::i64:
      return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::u8:
      return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

double element_tolerance(DType dtype, int terms, double expected) {
  // Each partial sum stored in a 16-bit float may round by half an ulp; allow one ulp per term.
  double magnitude = expected < 0 ? -expected : expected;
  if (dtype == DType::f16) return terms * magnitude / 1024.0;
  if (dtype == DType::bf16) return terms * magnitude / 128.0;
  return 0.0;  // integer-valued data: f32, f64 and the integer types are exact
}

}  // namespace weft::bench
