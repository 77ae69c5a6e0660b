#pragma once
// Test data whose reductions have a closed form, so a benchmark can prove its first iteration
// right without a reference run. Values are small integers: exact in every dtype (f16 and bf16
// included) for the rank counts a benchmark uses, so a sum checks bit for bit except for the
// rounding of partial sums in f16/bf16, which the tolerance covers.
#include <cmath>
#include <cstddef>
#include <string>

#include "runtime/tensor.h"

namespace weft::bench {

// Element `index` of rank `rank`'s input.
inline double pattern_value(int rank, size_t index) {
  return static_cast<double>(rank + 1) + static_cast<double>(index % 5);
}
// Sum over ranks 0..ranks-1 of pattern_value(r, index).
inline double pattern_sum(int ranks, size_t index) {
  double n = ranks;
  return n * (n + 1) / 2 + n * static_cast<double>(index % 5);
}

// t[i] = pattern_value(rank, first_index + i).
void fill_pattern(const Tensor& t, int rank, size_t first_index);
void fill_constant(const Tensor& t, double value);
double load_element(const Tensor& t, size_t i);

// Checks t[i] == expected(i) for every i (with a rounding allowance for f16/bf16 sums of
// `terms` values). Returns "" when right, else a message naming the first wrong element.
template <typename Expected>
std::string check_elements(const Tensor& t, int terms, Expected&& expected);

// --- implementation of the template ---

double element_tolerance(DType dtype, int terms, double expected);

template <typename Expected>
std::string check_elements(const Tensor& t, int terms, Expected&& expected) {
  for (size_t i = 0; i < t.numel(); ++i) {
    double want = expected(i);
    if (t.dtype() == DType::u8) want = std::fmod(want, 256.0);  // u8 sums wrap
    double got = load_element(t, i);
    double diff = got > want ? got - want : want - got;
    if (!(diff <= element_tolerance(t.dtype(), terms, want)))
      return "element " + std::to_string(i) + " of " + std::to_string(t.numel()) + " (" +
             dtype_name(t.dtype()) + ") is " + std::to_string(got) + ", expected " +
             std::to_string(want);
  }
  return "";
}

}  // namespace weft::bench
