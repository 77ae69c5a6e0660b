#include "comm/algorithms/algorithms.h"

#include <gtest/gtest.h>

namespace weft::comm {
namespace {

TEST(BlockRange, CoversEverythingOnceInOrder) {
  for (size_t total : {0, 1, 5, 7, 1001, 4096}) {
    for (int parts : {1, 2, 3, 4, 5, 8}) {
      size_t next = 0, smallest = SIZE_MAX, largest = 0;
      for (int i = 0; i < parts; i++) {
        auto [first, count] = block_range(total, parts, i);
        EXPECT_EQ(first, next);
        next = first + count;
        smallest = std::min(smallest, count);
        largest = std::max(largest, count);
      }
      EXPECT_EQ(next, total);
      EXPECT_LE(largest - smallest, 1u);  // balanced
    }
  }
}

}  // namespace
}  // namespace weft::comm
