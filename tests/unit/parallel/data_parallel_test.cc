#include "parallel/data_parallel.h"

#include <gtest/gtest.h>

#include <cmath>

#include "runtime/error.h"
#include "tests/support/inproc_group.h"

namespace weft::parallel {
namespace {

using weft::testing::run_inproc_group;

comm::CommOptions options() {
  comm::CommOptions o;
  o.timeout = std::chrono::seconds(20);
  return o;
}

float grad_value(int rank, size_t i) { return static_cast<float>((rank + 1) * 0.5 + (i % 13)); }

// Gradients reported in backward order (last parameter first): every rank ends with the
// average, in both modes and wire dtypes; ZeRO-1 ranks own disjoint shards covering everything.
void check(int ranks, bool zero1, DType wire) {
  std::vector<size_t> params = {100, 37, 1000, 5, 250};
  run_inproc_group(ranks, options(), [&](comm::Communicator& comm) {
    DataParallelOptions o;
    o.bucket_bytes = 64 * sizeof(float);
    o.zero1 = zero1;
    o.wire_dtype = wire;
    int waits = 0;  // a GPU trainer synchronises its stream here: once per bucket, before it
    o.wait_for_grads = [&waits] { ++waits; };
    DataParallel dp(comm, params, o);
    std::vector<float> grads(dp.padded_elements(), 0.0f);
    size_t total = 0;
    for (size_t c : params) total += c;
    for (size_t i = 0; i < total; i++) grads[i] = grad_value(comm.rank(), i);
    dp.begin(grads.data());
    for (int p = static_cast<int>(params.size()) - 1; p >= 0; p--) dp.grad_ready(p);
    CommStats stats = dp.finish();
    EXPECT_GE(stats.comm_seconds, 0.0);
    EXPECT_EQ(waits, static_cast<int>(dp.plan().buckets.size()));
    size_t owned = 0;
    for (const ShardRange& r : dp.owned_ranges()) {
      owned += r.count;
      for (size_t i = r.offset; i < r.offset + r.count && i < total; i++) {
        double want = 0;
        for (int q = 0; q < ranks; q++) want += grad_value(q, i);
        want /= ranks;
        double tol = wire == DType::bf16 ? 0.02 * std::abs(want) + 1e-3 : 1e-5;
        ASSERT_NEAR(grads[i], want, tol) << "element " << i;
      }
    }
    EXPECT_EQ(owned, zero1 ? dp.padded_elements() / ranks : dp.padded_elements());
    // ZeRO-1: after gathering, every rank holds every rank's shard of the parameters.
    if (zero1) {
      std::vector<float> p(dp.padded_elements(), -1.0f);
      for (const ShardRange& r : dp.owned_ranges())
        for (size_t i = r.offset; i < r.offset + r.count; i++) p[i] = static_cast<float>(i);
      dp.gather_params(p.data());
      for (size_t i = 0; i < p.size(); i++) ASSERT_EQ(p[i], static_cast<float>(i)) << i;
    }
  });
}

TEST(DataParallel, AllreduceAveragesF32) { check(3, false, DType::f32); }
TEST(DataParallel, AllreduceAveragesBf16Wire) { check(2, false, DType::bf16); }
TEST(DataParallel, Zero1ShardsF32) { check(4, true, DType::f32); }
TEST(DataParallel, Zero1ShardsBf16Wire) { check(3, true, DType::bf16); }

TEST(DataParallel, FinishBeforeAllGradientsIsAnError) {
  run_inproc_group(1, options(), [&](comm::Communicator& comm) {
    DataParallelOptions o;
    o.bucket_bytes = 16;
    DataParallel dp(comm, {10, 10}, o);
    std::vector<float> g(dp.padded_elements());
    dp.begin(g.data());
    dp.grad_ready(1);
    EXPECT_THROW(dp.finish(), Error);
  });
}

TEST(DataParallel, RefusesGradientsItCannotReduce) {
  run_inproc_group(1, options(), [&](comm::Communicator& comm) {
    // bf16 gradients come from a GPU model trained in bf16; the host model is f32.
    DataParallelOptions bf16_on_host;
    bf16_on_host.dtype = DType::bf16;
    EXPECT_THROW(DataParallel(comm, {10}, bf16_on_host), Error);
    // A GPU's f32 gradients are not converted for a bf16 wire: the model's dtype decides.
    DataParallelOptions converted_on_gpu;
    converted_on_gpu.wire_dtype = DType::bf16;
    converted_on_gpu.device = Device::cuda(0);
    EXPECT_THROW(DataParallel(comm, {10}, converted_on_gpu), Error);
  });
}

}  // namespace
}  // namespace weft::parallel
