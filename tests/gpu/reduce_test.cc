// The CUDA reduction kernels against kernels::cpu::reduce / scale_down, for every dtype and op,
// on sizes that leave every path some work: none, a head only, a head and a tail, many packs
// plus a tail. Results must be bit for bit the CPU's: each element is one IEEE operation (in
// f32 for f16/bf16, then one round to nearest even) on both sides.
#include "kernels/cuda/reduce.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/reduce.h"
#include "runtime/error.h"
#include "runtime/half.h"
#include "tests/gpu/gpu_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;

const size_t kSizes[] = {0, 1, 7, 1001, (size_t{1} << 20) + 3};

// count elements of dtype as raw bytes, values kept small enough that sums and products of two
// stay in range for every integer type (u8 may wrap, the same way on both sides).
std::vector<uint8_t> random_elements(DType dtype, size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> real(-2.0f, 2.0f);
  std::uniform_int_distribution<int> small(-1000, 1000);
  std::vector<uint8_t> bytes(count * dtype_size(dtype));
  for (size_t i = 0; i < count; i++) {
    uint8_t* at = bytes.data() + i * dtype_size(dtype);
    auto put = [&](auto value) { std::memcpy(at, &value, sizeof(value)); };
    switch (dtype) {
      case DType::f32:
        put(real(rng));
        break;
      case DType::f64:
        put(static_cast<double>(real(rng)) * 1.000000001);
        break;
      case DType::f16:
        put(f16(real(rng)));
        break;
      case DType::bf16:
        put(bf16(real(rng)));
        break;
      case DType::i32:
        put(static_cast<int32_t>(small(rng)));
        break;
      case DType::i64:
        put(static_cast<int64_t>(small(rng)) * 3000000);
        break;
      case DType::u8:
        put(static_cast<uint8_t>(small(rng)));
        break;
    }
  }
  return bytes;
}

class ReduceKernelTest : public gpu_test::GpuTest,
                         public ::testing::WithParamInterface<std::tuple<DType, ReduceOp>> {};

// out, a and b at element offsets (from a 256-byte aligned allocation) of the given amounts:
// equal offsets take the packed path with a head, unequal ones the element-at-a-time path.
void check_reduce(DType dtype, ReduceOp op, size_t count, size_t out_offset, size_t a_offset,
                  size_t b_offset, cudaStream_t stream) {
  const size_t element = dtype_size(dtype);
  const size_t slack = 4;
  const auto a = random_elements(dtype, count + slack, 1 + count);
  const auto b = random_elements(dtype, count + slack, 2 + count);
  std::vector<uint8_t> expected((count + slack) * element, 0xAB);  // guard pattern
  std::vector<uint8_t> out = expected;
  kernels::cpu::reduce(expected.data() + out_offset * element, a.data() + a_offset * element,
                       b.data() + b_offset * element, count, dtype, op);

  DeviceArray<uint8_t> d_a(a), d_b(b), d_out(out);
  kernels::cuda::reduce(d_out.get() + out_offset * element, d_a.get() + a_offset * element,
                        d_b.get() + b_offset * element, count, dtype, op, stream);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  // The whole buffer, guards included: nothing outside [offset, offset + count) may change.
  EXPECT_TRUE(d_out.download() == expected)
      << dtype_name(dtype) << " " << reduce_op_name(op) << " count " << count << " offsets "
      << out_offset << "/" << a_offset << "/" << b_offset;
}

TEST_P(ReduceKernelTest, MatchesCpuAtEverySizeAndAlignment) {
  const auto [dtype, op] = GetParam();
  for (size_t count : kSizes) {
    check_reduce(dtype, op, count, 0, 0, 0, stream());
    check_reduce(dtype, op, count, 1, 1, 1, stream());  // head up to the 16-byte boundary
    check_reduce(dtype, op, count, 0, 1, 2, stream());  // offsets differ: element path
  }
}

TEST_P(ReduceKernelTest, InPlaceOnEitherInput) {
  const auto [dtype, op] = GetParam();
  const size_t count = 1001;
  const auto a = random_elements(dtype, count, 11);
  const auto b = random_elements(dtype, count, 12);
  std::vector<uint8_t> expected(a.size());
  kernels::cpu::reduce(expected.data(), a.data(), b.data(), count, dtype, op);

  DeviceArray<uint8_t> d_a(a), d_b(b);
  kernels::cuda::reduce(d_a.get(), d_a.get(), d_b.get(), count, dtype, op, stream());
  EXPECT_TRUE(d_a.download() == expected) << "out = a";

  DeviceArray<uint8_t> e_a(a), e_b(b);
  kernels::cuda::reduce(e_b.get(), e_a.get(), e_b.get(), count, dtype, op, stream());
  EXPECT_TRUE(e_b.download() == expected) << "out = b";
}

INSTANTIATE_TEST_SUITE_P(AllTypesAndOps, ReduceKernelTest,
                         ::testing::Combine(::testing::ValuesIn(kAllDTypes),
                                            ::testing::ValuesIn(kAllReduceOps)),
                         [](const auto& info) {
                           return std::string(dtype_name(std::get<0>(info.param))) + "_" +
                                  reduce_op_name(std::get<1>(info.param));
                         });

class ScaleDownKernelTest : public gpu_test::GpuTest,
                            public ::testing::WithParamInterface<DType> {};

TEST_P(ScaleDownKernelTest, MatchesCpu) {
  const DType dtype = GetParam();
  const size_t element = dtype_size(dtype);
  for (size_t count : kSizes) {
    for (size_t offset : {size_t{0}, size_t{1}}) {
      for (int divisor : {1, 3, 8}) {
        const auto data = random_elements(dtype, count + offset, 5 + count);
        std::vector<uint8_t> expected = data;
        kernels::cpu::scale_down(expected.data() + offset * element, count, dtype, divisor);
        DeviceArray<uint8_t> d(data);
        kernels::cuda::scale_down(d.get() + offset * element, count, dtype, divisor, stream());
        EXPECT_TRUE(d.download() == expected) << dtype_name(dtype) << " count " << count
                                              << " offset " << offset << " divisor " << divisor;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, ScaleDownKernelTest, ::testing::ValuesIn(kAllDTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// The argument checks happen on the host before anything is enqueued, so these run anywhere.
TEST(ReduceKernelErrors, PointerNotElementAlignedIsInvalidArgument) {
  void* odd = reinterpret_cast<void*>(uintptr_t{0x1001});
  void* even = reinterpret_cast<void*>(uintptr_t{0x1000});
  try {
    kernels::cuda::reduce(even, odd, even, 8, DType::f32, ReduceOp::sum, nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("`a`"), std::string::npos) << e.what();
  }
}

TEST(ReduceKernelErrors, NonPositiveDivisorIsInvalidArgument) {
  void* p = reinterpret_cast<void*>(uintptr_t{0x1000});
  try {
    kernels::cuda::scale_down(p, 8, DType::f32, 0, nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("divisor 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace weft
