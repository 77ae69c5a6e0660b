#include "runtime/buffer.h"

#include <gtest/gtest.h>

#include <string>

#include "runtime/error.h"

namespace weft {
namespace {

std::string view_error(const Buffer& b, DType dtype, size_t count) {
  try {
    b.view(dtype, count);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    return e.message();
  }
  return "";
}

TEST(Buffer, ViewsUpToItsSizeAndNamesTheSizeBeyond) {
  Buffer b(64);
  Tensor t = b.view(DType::f32, 16);
  EXPECT_EQ(t.data(), b.data());
  EXPECT_EQ(t.numel(), 16u);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_EQ(view_error(b, DType::f32, 17), "view of 17 f32 exceeds the buffer of 64 bytes");
  EXPECT_EQ(view_error(b, DType::bf16, 33), "view of 33 bf16 exceeds the buffer of 64 bytes");
  // A count whose byte size wraps around size_t is refused, not taken for a small view.
  EXPECT_NE(view_error(b, DType::f32, SIZE_MAX / 4 + 1), "");  // 4 x that is 0
}

}  // namespace
}  // namespace weft
