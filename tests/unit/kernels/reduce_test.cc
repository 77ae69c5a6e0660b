#include "kernels/reduce.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tests/support/typed_values.h"

namespace weft::kernels::cpu {
namespace {

using weft::testing::get_value;
using weft::testing::set_value;

// Every dtype and op, on lengths around the vector widths and the f16 block size, against a
// scalar loop in double.
TEST(Reduce, MatchesScalarReferenceForEveryDtypeAndOp) {
  std::mt19937 rng(7);
  for (DType t : kAllDTypes) {
    for (ReduceOp op : kAllReduceOps) {
      for (size_t n : {0, 1, 15, 16, 17, 255, 256, 257, 1000}) {
        size_t esz = dtype_size(t);
        std::vector<char> a(n * esz + 1), b(n * esz + 1), out(n * esz + 1);
        for (size_t i = 0; i < n; i++) {
          set_value(a.data(), t, i, static_cast<int>(rng() % 7) - (t == DType::u8 ? 0 : 3));
          set_value(b.data(), t, i, static_cast<int>(rng() % 7) - (t == DType::u8 ? 0 : 3));
        }
        reduce(out.data(), a.data(), b.data(), n, t, op);
        for (size_t i = 0; i < n; i++) {
          double x = get_value(a.data(), t, i), y = get_value(b.data(), t, i), want = 0;
          switch (op) {
            case ReduceOp::sum:
            case ReduceOp::avg: want = x + y; break;
            case ReduceOp::prod: want = x * y; break;
            case ReduceOp::max: want = std::max(x, y); break;
            case ReduceOp::min: want = std::min(x, y); break;
          }
          ASSERT_EQ(get_value(out.data(), t, i), weft::testing::as_stored(want, t))
              << dtype_name(t) << " " << reduce_op_name(op) << " n=" << n << " i=" << i;
        }
      }
    }
  }
}

TEST(Reduce, OutputMayAliasAnInput) {
  std::vector<float> a = {1, 2, 3}, b = {10, 20, 30};
  reduce(a.data(), a.data(), b.data(), 3, DType::f32, ReduceOp::sum);
  EXPECT_EQ(a, (std::vector<float>{11, 22, 33}));
  reduce(b.data(), a.data(), b.data(), 3, DType::f32, ReduceOp::max);
  EXPECT_EQ(b, (std::vector<float>{11, 22, 33}));
}

TEST(Reduce, Bf16AccumulatesInF32AndRoundsOnce) {
  // 256 + 1 is not representable in bf16 (8 bits of mantissa): rounds to even (256);
  // 256 + 3 rounds to 260. One rounding per call, not per operand.
  bf16 a(256.0f), b(1.0f), c(3.0f), out;
  reduce(&out, &a, &b, 1, DType::bf16, ReduceOp::sum);
  EXPECT_EQ(static_cast<float>(out), 256.0f);
  reduce(&out, &a, &c, 1, DType::bf16, ReduceOp::sum);
  EXPECT_EQ(static_cast<float>(out), 260.0f);
}

TEST(ScaleDown, DividesEveryDtype) {
  std::vector<float> f = {3, -6};
  scale_down(f.data(), 2, DType::f32, 4);
  EXPECT_EQ(f, (std::vector<float>{0.75f, -1.5f}));
  std::vector<int32_t> i = {7, -7};
  scale_down(i.data(), 2, DType::i32, 2);
  EXPECT_EQ(i, (std::vector<int32_t>{3, -3}));  // truncation toward zero, like C++
  f16 h(6.0f);
  scale_down(&h, 1, DType::f16, 4);
  EXPECT_EQ(static_cast<float>(h), 1.5f);
}

}  // namespace
}  // namespace weft::kernels::cpu
