#include <gtest/gtest.h>

#include <cmath>

#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/half.h"
#include "runtime/tensor.h"

namespace weft {
namespace {

TEST(DType, NamesRoundTrip) {
  for (DType t : kAllDTypes) EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  for (ReduceOp op : kAllReduceOps) EXPECT_EQ(parse_reduce_op(reduce_op_name(op)), op);
  EXPECT_THROW(parse_dtype("float"), Error);
  EXPECT_THROW(parse_reduce_op("mean"), Error);
}

TEST(DType, Sizes) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_EQ(dtype_size(DType::u8), 1u);
}

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(static_cast<float>(bf16(1.0f)), 1.0f);
  EXPECT_EQ(static_cast<float>(bf16(-3.5f)), -3.5f);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(static_cast<float>(bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(static_cast<float>(bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(static_cast<float>(bf16(NAN))));
}

TEST(Half, F16MatchesIeeeValues) {
  EXPECT_EQ(f16(1.0f).bits, 0x3c00);
  EXPECT_EQ(f16(-2.0f).bits, 0xc000);
  EXPECT_EQ(f16(65504.0f).bits, 0x7bff);          // largest finite
  EXPECT_EQ(f16(1e6f).bits, 0x7c00);              // overflow to inf
  EXPECT_EQ(f16(std::ldexp(1.0f, -24)).bits, 1);  // smallest subnormal
  for (uint32_t b = 0; b < 0x7c00; b += 7) {       // every finite positive half round-trips
    float f = f16::half_to_float(static_cast<uint16_t>(b));
    EXPECT_EQ(f16(f).bits, b) << b;
  }
  EXPECT_TRUE(std::isnan(f16::half_to_float(f16(NAN).bits)));
}

TEST(Tensor, SliceAndDescribe) {
  float data[10] = {};
  Tensor t(data, DType::f32, {2, 5});
  EXPECT_EQ(t.numel(), 10u);
  EXPECT_EQ(t.nbytes(), 40u);
  EXPECT_EQ(t.describe(), "f32[2,5] on cpu");
  EXPECT_EQ(t.slice(3, 4).data(), data + 3);
  EXPECT_THROW(t.slice(8, 4), Error);
  EXPECT_THROW(Tensor(nullptr, DType::f32, {3}), Error);
}

}  // namespace
}  // namespace weft
