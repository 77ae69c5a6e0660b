#include "parallel/bucket_plan.h"

#include <gtest/gtest.h>

#include "runtime/error.h"

namespace weft::parallel {
namespace {

TEST(BucketPlan, CutsFromTheEndAndCoversEverything) {
  // Params of 10, 30, 5, 20 elements = 65, padded to 68 for 4 ranks; buckets of 16.
  BucketPlan p = plan_buckets({10, 30, 5, 20}, 16, 4);
  EXPECT_EQ(p.padded_elements, 68u);
  size_t end = p.padded_elements;
  for (const Bucket& b : p.buckets) {
    EXPECT_EQ(b.offset + b.count, end);  // contiguous, last bucket first
    EXPECT_EQ(b.count % 4, 0u);
    end = b.offset;
  }
  EXPECT_EQ(end, 0u);
  EXPECT_EQ(p.buckets.size(), 5u);  // 16,16,16,16,4
  // The first bucket (elements 52..68) holds only the last parameter (45..65).
  EXPECT_EQ(p.buckets[0].params, std::vector<int>{3});
  // Parameter 1 (10..40) spans the buckets covering 36..52, 20..36 and 4..20.
  EXPECT_EQ(p.buckets_of_param[1], (std::vector<int>{1, 2, 3}));
}

TEST(BucketPlan, OneBucketWhenBig) {
  BucketPlan p = plan_buckets({3, 4}, 1000, 2);
  ASSERT_EQ(p.buckets.size(), 1u);
  EXPECT_EQ(p.buckets[0].count, 8u);
  EXPECT_EQ(p.buckets[0].params, (std::vector<int>{0, 1}));
}

TEST(BucketPlan, EmptyParamsBelongNowhere) {
  BucketPlan p = plan_buckets({4, 0, 4}, 4, 1);
  EXPECT_TRUE(p.buckets_of_param[1].empty());
}

TEST(BucketPlan, RejectsZeroSizes) {
  EXPECT_THROW(plan_buckets({4}, 0, 1), Error);
  EXPECT_THROW(plan_buckets({4}, 4, 0), Error);
}

}  // namespace
}  // namespace weft::parallel
