#pragma once
// Element types and reduction operators shared by tensors, kernels and collectives.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

namespace weft {

enum class DType : uint8_t { f32, f16, bf16, f64, i32, i64, u8 };
inline constexpr DType kAllDTypes[] = {DType::f32, DType::f16, DType::bf16, DType::f64,
                                       DType::i32, DType::i64, DType::u8};

// Bytes per element, in DType's order.
inline constexpr size_t kDTypeBytes[] = {4, 2, 2, 8, 4, 8, 1};
static_assert(std::size(kDTypeBytes) == std::size(kAllDTypes));
// Inline: every op and message asks it, often twice.
constexpr size_t dtype_size(DType t) {
  const auto i = static_cast<size_t>(t);
  return i < std::size(kDTypeBytes) ? kDTypeBytes[i] : 0;
}
const char* dtype_name(DType t);
// Parses "f32", "bf16", ...; throws weft::Error(InvalidArgument) listing the valid names.
DType parse_dtype(std::string_view name);
bool dtype_is_float(DType t);

enum class ReduceOp : uint8_t { sum, avg, max, min, prod };
inline constexpr ReduceOp kAllReduceOps[] = {ReduceOp::sum, ReduceOp::avg, ReduceOp::max,
                                             ReduceOp::min, ReduceOp::prod};
const char* reduce_op_name(ReduceOp op);
ReduceOp parse_reduce_op(std::string_view name);

}  // namespace weft
