#include "parallel/sharded_adamw.h"

#include <gtest/gtest.h>

#include <random>

#include "kernels/adamw.h"

namespace weft::parallel {
namespace {

// Two "ranks" each stepping their own shard must end up where one optimizer over the whole
// buffer does, decay applied only to the decaying tensors.
TEST(ShardedAdamW, ShardsTogetherEqualTheWholeBuffer) {
  const std::vector<DecaySpan> spans = {{0, 10, true}, {10, 3, false}, {13, 7, true}};
  const size_t n = 22;  // 2 elements of padding
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> params(n), grads(n);
  for (size_t i = 0; i < 20; i++) params[i] = dist(rng);
  for (size_t i = 0; i < 20; i++) grads[i] = dist(rng);

  AdamWOptions opt{.weight_decay = 0.5f};
  std::vector<float> whole = params;
  // The whole buffer on a 3-thread context, each shard on one: the same update per element.
  const kernels::cpu::CpuContext three(3), one(1);
  ShardedAdamW all(three, {{0, n}}, spans, opt);
  std::vector<float> sharded = params;
  ShardedAdamW first(one, {{0, 6}, {11, 5}}, spans, opt),
      second(one, {{6, 5}, {16, 6}}, spans, opt);
  for (long t = 1; t <= 3; t++) {
    all.step(whole.data(), grads.data(), 0.01f, t);
    first.step(sharded.data(), grads.data(), 0.01f, t);
    second.step(sharded.data(), grads.data(), 0.01f, t);
  }
  EXPECT_EQ(whole, sharded);

  // The reference: the kernel on each span with or without decay.
  std::vector<float> ref = params, m(n, 0), v(n, 0);
  for (long t = 1; t <= 3; t++)
    for (const auto& s : spans)
      kernels::cpu::adamw_update(one, ref.data() + s.offset, grads.data() + s.offset,
                                 m.data() + s.offset, v.data() + s.offset, s.count, 0.01f, 0.9f,
                                 0.95f, 1e-8f, s.decay ? 0.5f : 0.0f, t);
  for (size_t i = 0; i < 20; i++) EXPECT_EQ(whole[i], ref[i]) << i;
  EXPECT_EQ(whole[20], 0.0f);  // padding: zero gradient, zero weight, stays zero
  // The moments, read back segment by segment (what a checkpoint writes), are the reference's.
  size_t covered = 0;
  for (const AdamWSegment& s : all.segments()) {
    for (size_t i = 0; i < s.count; i++) {
      EXPECT_EQ(all.first_moment()[s.state + i], m[s.offset + i]) << s.offset + i;
      EXPECT_EQ(all.second_moment()[s.state + i], v[s.offset + i]) << s.offset + i;
    }
    covered += s.count;
  }
  EXPECT_EQ(covered, n);  // every owned element, the padding too (its moments stay 0)
}

TEST(ShardedAdamW, NormAndScalingCoverOnlyTheOwnedElements) {
  const std::vector<DecaySpan> spans = {{0, 4, true}};
  std::vector<float> grads = {1, 2, 3, 4};
  ShardedAdamW shard(kernels::cpu::CpuContext(1), {{2, 2}}, spans, {});
  EXPECT_DOUBLE_EQ(shard.owned_grad_square_sum(grads.data()), 9.0 + 16.0);
  shard.scale_grads(grads.data(), 0.5f);
  EXPECT_EQ(grads, (std::vector<float>{1, 2, 1.5f, 2}));
}

}  // namespace
}  // namespace weft::parallel
