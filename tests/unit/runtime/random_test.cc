#include "runtime/random.h"

#include <gtest/gtest.h>

namespace weft {
namespace {

TEST(RandomHex, TwoLowercaseHexDigitsPerByteAndFreshEachCall) {
  EXPECT_EQ(random_hex(0), "");
  std::string a = random_hex(16), b = random_hex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace weft
