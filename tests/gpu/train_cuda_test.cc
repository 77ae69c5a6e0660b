// weft-train --device cuda end to end under weftrun, on the one GPU a test machine has: the
// GPU trainer in f32 follows the CPU trainer step by step (also over native NCCL, which takes
// GPU tensors only); 2 ranks sharing the GPU (their
// buckets staged through pinned host memory over shm), with and without ZeRO-1, follow 1 rank;
// tensor and pipeline parallelism on the GPU follow the CPU; and the bf16 model learns the demo
// corpus as fast as the f32 one.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/gpu/gpu_test_support.h"
#include "tests/integration/train_harness.h"

namespace weft::testing {
namespace {

class TrainCuda : public Train {
 protected:
  void SetUp() override {
    if (!gpu_test::has_cuda_device()) GTEST_SKIP() << "no CUDA device visible; GPU tests need one";
    Train::SetUp();
  }
  // The losses of a run of `ranks` ranks with `flags` on top of `base`.
  std::vector<double> run(int ranks, const Args& base, const Args& flags, const std::string& log) {
    Args all = base;
    all.insert(all.end(), flags.begin(), flags.end());
    all.insert(all.end(), {"--log-json", (dir_ / log).string()});
    WeftrunResult r = train(ranks, all);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return losses(log);
  }
};

const Args kModel = {"--layers", "2", "--d-model", "64", "--heads", "4", "--seq", "32",
                     "--batch", "8", "--micro-batch", "2", "--steps", "10", "--lr", "3e-3",
                     "--warmup", "2", "--bucket-mb", "0.05"};

void expect_same_losses(const std::vector<double>& got, const std::vector<double>& want,
                        double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); i++)
    EXPECT_NEAR(got[i], want[i], rtol * std::fabs(want[i])) << what << ", step " << i + 1;
}

TEST_F(TrainCuda, F32OnTheGpuFollowsTheCpu) {
  auto cpu = run(1, kModel, {"--device", "cpu"}, "cpu.json");
  auto gpu = run(1, kModel, {"--device", "cuda", "--precision", "f32"}, "gpu.json");
  // Native NCCL takes GPU tensors only: the trainer must give it nothing else.
  auto nccl = run(1, kModel, {"--device", "cuda", "--precision", "f32", "--backend", "nccl"},
                  "nccl.json");
  ASSERT_EQ(cpu.size(), 10u);
  EXPECT_LT(cpu.back(), cpu.front());
  // Both compute in f32; summation orders differ (and the embedding's backward adds atomically).
  expect_same_losses(gpu, cpu, 1e-3, "cuda f32 against cpu");
  expect_same_losses(nccl, cpu, 1e-3, "cuda f32 over nccl against cpu");
}

TEST_F(TrainCuda, TwoRanksSharingTheGpuFollowOneWithAndWithoutZero1) {
  const Args f32 = {"--device", "cuda", "--precision", "f32", "--backend", "shm"};
  auto one = run(1, kModel, f32, "one.json");
  auto two = run(2, kModel, f32, "two.json");
  Args zero1 = f32;
  zero1.push_back("--zero1");
  auto sharded = run(2, kModel, zero1, "two-zero1.json");
  expect_same_losses(two, one, 1e-4, "2 ranks against 1");
  expect_same_losses(sharded, one, 1e-4, "2 ranks with ZeRO-1 against 1");
}

// Tensor and pipeline parallelism on the GPU: 2 ranks sharing it as tp 2, pp 2 (1f1b and zb),
// and 4 as tp 2 x pp 2, follow the CPU's one rank (the same trainer code, the CUDA kernels).
TEST_F(TrainCuda, TensorAndPipelineParallelFollowTheCpu) {
  auto cpu = run(1, kModel, {"--device", "cpu"}, "cpu.json");
  const Args f32 = {"--device", "cuda", "--precision", "f32", "--backend", "shm"};
  const std::vector<std::pair<int, Args>> layouts = {
      {2, {"--tp", "2"}},
      {2, {"--pp", "2", "--micro-batch", "1"}},
      {2, {"--pp", "2", "--micro-batch", "1", "--schedule", "zb"}},
      {4, {"--tp", "2", "--pp", "2", "--micro-batch", "1"}}};
  for (size_t i = 0; i < layouts.size(); i++) {
    Args flags = f32;
    flags.insert(flags.end(), layouts[i].second.begin(), layouts[i].second.end());
    std::string what;
    for (const std::string& f : layouts[i].second) what += f + " ";
    auto got = run(layouts[i].first, kModel, flags, "layout" + std::to_string(i) + ".json");
    expect_same_losses(got, cpu, 1e-3, "cuda f32 " + what + "against cpu");
  }
}

TEST_F(TrainCuda, Bf16LearnsTheDemoCorpusLikeF32) {
  Args demo = split_words(WEFT_DEMO_FLAGS);
  demo.insert(demo.end(), {"--steps", "50", "--device", "cuda"});
  auto f32 = run(1, demo, {"--precision", "f32"}, "f32.json");
  auto bf16 = run(1, demo, {"--precision", "bf16"}, "bf16.json");
  ASSERT_EQ(bf16.size(), 50u);
  EXPECT_LE(bf16.back(), 0.7 * bf16.front()) << "first " << bf16.front() << " last " << bf16.back();
  EXPECT_NEAR(bf16.back(), f32.back(), 0.05 * f32.back());
}

}  // namespace
}  // namespace weft::testing
