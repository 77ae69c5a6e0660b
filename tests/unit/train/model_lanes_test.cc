// ModelLanes against one Gpt running the whole micro-batch: same loss, same accumulated
// gradients, and every tensor reported ready exactly once, already summed over the lanes.
#include "train/model_lanes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "models/gpt.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

const models::GptConfig kConfig{.layers = 2, .d_model = 32, .heads = 4, .seq = 16};
const kernels::cpu::CpuContext kOne(1), kFour(4);

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % kConfig.vocab);
  return t;
}

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (float x : a) scale = std::max(scale, std::abs(static_cast<double>(x)));
  for (size_t i = 0; i < a.size(); i++)
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / scale);
  return worst;
}

// Two micro-batches of `micro` sequences, accumulated: the first backward without summing,
// the second as the step's last.
struct Step {
  std::vector<float> grads;
  float loss = 0;
  std::vector<int> ready_count;
  bool ready_was_final = true;
};

TEST(ModelLanes, MatchOneModelOnTheWholeMicroBatch) {
  const int micro = 5;  // does not split evenly over 2 or 3 lanes
  const size_t per_batch = static_cast<size_t>(micro) * kConfig.seq;
  std::vector<int32_t> in = tokens(2 * per_batch, 1), target = tokens(2 * per_batch, 2);
  const float scale = 1.0f / (2 * per_batch);

  models::Gpt reference(kOne, kConfig, micro);
  std::vector<float> params(reference.layout().total());
  reference.init_params(params.data(), 7);
  Step want;
  want.grads.assign(params.size(), 0.0f);
  for (int m = 0; m < 2; m++) {
    reference.forward(params.data(), in.data() + m * per_batch, target.data() + m * per_batch,
                      micro);
    want.loss += reference.mean_loss();
    reference.backward(params.data(), want.grads.data(), scale);
  }

  kernels::cpu::BlasThreads caller(2);
  for (int lanes : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(lanes) + " lanes");
    ModelLanes model(kFour, kConfig, micro, lanes);
    Step got;
    got.grads.assign(params.size(), 0.0f);
    got.ready_count.assign(model.layout().tensors().size(), 0);
    std::vector<float> expected_at_ready = want.grads;
    for (int m = 0; m < 2; m++) {
      got.loss += model.forward(params.data(), in.data() + m * per_batch,
                                target.data() + m * per_batch, micro);
      model.backward(params.data(), got.grads.data(), scale, m == 1, [&](int index) {
        got.ready_count[index]++;
        const auto& t = model.layout().tensors()[index];
        for (size_t i = 0; i < t.count; i++) {
          float w = want.grads[t.offset + i], g = got.grads[t.offset + i];
          if (std::abs(w - g) > 1e-5f * (1.0f + std::abs(w))) got.ready_was_final = false;
        }
      });
    }
    EXPECT_EQ(kernels::cpu::blas_threads(), 2) << "the BLAS thread count is restored";
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * want.loss);
    EXPECT_LT(max_relative_difference(want.grads, got.grads), 1e-5);
    for (size_t i = 0; i < got.ready_count.size(); i++)
      EXPECT_EQ(got.ready_count[i], 1) << model.layout().tensors()[i].name;
    EXPECT_TRUE(got.ready_was_final) << "a tensor was reported before its lanes were summed";

    // The lanes' own buffers start the next step from zero: the same step again gives the
    // same gradients.
    std::vector<float> again(params.size(), 0.0f);
    for (int m = 0; m < 2; m++) {
      model.forward(params.data(), in.data() + m * per_batch, target.data() + m * per_batch,
                    micro);
      model.backward(params.data(), again.data(), scale, m == 1);
    }
    EXPECT_LT(max_relative_difference(got.grads, again), 1e-6);
  }
}

TEST(ModelLanes, EvaluationBatchSmallerThanTheLanesStillWorks) {
  models::Gpt reference(kOne, kConfig, 4);
  std::vector<float> params(reference.layout().total());
  reference.init_params(params.data(), 3);
  std::vector<int32_t> in = tokens(kConfig.seq, 5), target = tokens(kConfig.seq, 6);
  reference.forward(params.data(), in.data(), target.data(), 1);
  const float want = reference.mean_loss();
  ModelLanes model(kFour, kConfig, 4, 4);
  EXPECT_NEAR(model.forward(params.data(), in.data(), target.data(), 1), want, 1e-6 * want);
}

TEST(ModelLanes, EveryLaneNeedsASequenceAndAThread) {
  EXPECT_THROW(ModelLanes(kFour, kConfig, 2, 3), Error);
  EXPECT_THROW(ModelLanes(kernels::cpu::CpuContext(2), kConfig, 4, 3), Error);
}

// A lane that fails (here: a token outside the vocabulary in its share of the batch) fails the
// call on the caller's thread, and OpenBLAS's process-wide thread count, lowered to 1 while the
// lanes run, is back as the caller had it. Before, lane 0's error left the count at 1 for the
// rest of the process, and another lane's ended the process (an exception out of a thread).
TEST(ModelLanes, ALaneErrorReachesTheCallerAndRestoresTheBlasCount) {
  ModelLanes model(kFour, kConfig, 4, 2);
  std::vector<float> params(model.layout().total());
  model.init_params(params.data(), 3);
  kernels::cpu::BlasThreads caller(2);
  for (int bad_lane : {0, 1}) {
    SCOPED_TRACE("error in lane " + std::to_string(bad_lane));
    std::vector<int32_t> in = tokens(4 * kConfig.seq, 5), target = tokens(4 * kConfig.seq, 6);
    in[static_cast<size_t>(bad_lane) * 2 * kConfig.seq] = kConfig.vocab;  // lane k: sequences 2k..
    try {
      model.forward(params.data(), in.data(), target.data(), 4);
      ADD_FAILURE() << "a token outside the vocabulary should fail the forward";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(kernels::cpu::blas_threads(), 2);
  }
}

}  // namespace
}  // namespace weft::train
