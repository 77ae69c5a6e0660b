// A model cut into tensor-parallel shards and pipeline stages computes what the one-rank model
// computes: the same losses, and on every rank a gradient equal to its slice of the one-rank
// gradient (the tied embedding's two copies, on the first and last stage, summing to it).
// tp ranks run as threads over in-process communicators; the stages of one tp rank run one
// after another on its thread, handing activations and their gradients over by hand, with two
// micro-batches in flight (both forwards, then both backwards, each in its own slot).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/gpt.h"
#include "parallel/tensor_parallel_group.h"
#include "tests/support/inproc_group.h"

namespace weft::parallel {
namespace {

using models::Gpt;
using models::GptConfig;
using models::GptLayout;
using models::ParamTensor;
using models::StagePlan;

const GptConfig kConfig{.layers = 4, .d_model = 16, .heads = 4, .seq = 6, .vocab = 37,
                        .padded_vocab = 40};
constexpr int kMicro = 2, kMicroBatches = 2;
constexpr uint64_t kSeed = 11;
const kernels::cpu::CpuContext kOne(1);

std::vector<int32_t> tokens(int salt) {
  std::vector<int32_t> t(static_cast<size_t>(kMicro * kMicroBatches * kConfig.seq));
  for (size_t i = 0; i < t.size(); i++)
    t[i] = static_cast<int32_t>((i * 7 + static_cast<size_t>(salt) * 13 + i * i) % kConfig.vocab);
  return t;
}
const std::vector<int32_t> kInputs = tokens(1), kTargets = tokens(2);
float loss_scale() { return 1.0f / (kMicro * kMicroBatches * kConfig.seq); }
const int32_t* micro_batch(const std::vector<int32_t>& t, int m) {
  return t.data() + static_cast<size_t>(m) * kMicro * kConfig.seq;
}

struct Result {
  std::vector<float> losses;
  std::map<std::string, std::vector<float>> grads;  // by tensor name, this rank's slice
  std::vector<ParamTensor> tensors;                   // of every stage
};

// The one-rank model: micro-batch by micro-batch.
Result one_rank() {
  Gpt model(kOne, kConfig, kMicro);
  std::vector<float> params(model.layout().total()), grads(params.size(), 0.0f);
  model.init_params(params.data(), kSeed);
  Result r;
  for (int m = 0; m < kMicroBatches; m++) {
    model.forward(params.data(), micro_batch(kInputs, m), micro_batch(kTargets, m), kMicro);
    r.losses.push_back(model.mean_loss());
    model.backward(params.data(), grads.data(), loss_scale());
  }
  for (const ParamTensor& t : model.layout().tensors())
    r.grads[t.name].assign(grads.begin() + static_cast<long>(t.offset),
                           grads.begin() + static_cast<long>(t.offset + t.count));
  r.tensors = model.layout().tensors();
  return r;
}

// One tp rank's share of every stage, all forwards first, then all backwards; with `split`,
// each backward in two halves (zero-bubble), every weight half after every input half.
Result sharded(int pp, int tp_rank, int tp_size, TpGroup* tp, bool split) {
  std::vector<std::unique_ptr<Gpt>> stages;
  std::vector<std::vector<float>> params, grads;
  for (int s = 0; s < pp; s++) {
    GptLayout layout(kConfig, StagePlan::of(kConfig, s, pp, tp_rank, tp_size));
    stages.push_back(std::make_unique<Gpt>(kOne, layout, kMicro, kMicroBatches, tp, split));
    params.emplace_back(layout.total());
    grads.emplace_back(layout.total(), 0.0f);
    stages.back()->init_params(params.back().data(), kSeed);
  }
  Result r;
  for (int m = 0; m < kMicroBatches; m++) {
    const float* x = nullptr;
    for (int s = 0; s < pp; s++) {
      stages[s]->forward(m, params[s].data(), micro_batch(kInputs, m), micro_batch(kTargets, m), x,
                         kMicro);
      x = stages[s]->output(m);
    }
    r.losses.push_back(stages.back()->mean_loss(m));
  }
  for (int m = 0; m < kMicroBatches; m++) {
    const float* dy = nullptr;
    for (int s = pp - 1; s >= 0; s--) {
      if (split)
        stages[s]->backward_input(m, params[s].data(), grads[s].data(), loss_scale(), dy);
      else
        stages[s]->backward(m, params[s].data(), grads[s].data(), loss_scale(), dy);
      dy = stages[s]->input_grad();
    }
  }
  if (split)
    for (int m = 0; m < kMicroBatches; m++)
      for (int s = pp - 1; s >= 0; s--) stages[s]->backward_weight(m, grads[s].data());
  for (int s = 0; s < pp; s++)
    for (const ParamTensor& t : stages[s]->layout().tensors()) {
      std::vector<float>& g = r.grads[t.name];  // wte's two copies add up
      g.resize(t.count, 0.0f);
      for (size_t i = 0; i < t.count; i++) g[i] += grads[s][t.offset + i];
      r.tensors.push_back(t);
    }
  return r;
}

void expect_slices_of(const Result& whole, const Result& part, const std::string& where) {
  ASSERT_EQ(part.losses.size(), whole.losses.size());
  for (size_t m = 0; m < whole.losses.size(); m++)
    EXPECT_NEAR(part.losses[m], whole.losses[m], 1e-5 * whole.losses[m]) << where << " mb " << m;
  std::map<std::string, const ParamTensor*> global;
  for (const ParamTensor& t : whole.tensors) global[t.name] = &t;
  std::map<std::string, bool> seen;
  for (const ParamTensor& t : part.tensors) {
    if (seen[t.name]) continue;  // wte's second copy: already summed
    seen[t.name] = true;
    std::vector<float> want(t.count);
    models::copy_slice(t, whole.grads.at(t.name).data(), want.data());
    const std::vector<float>& got = part.grads.at(t.name);
    float scale = 0;
    for (float w : want) scale = std::max(scale, std::fabs(w));
    for (size_t i = 0; i < t.count; i++)
      ASSERT_NEAR(got[i], want[i], 1e-7 + 1e-4 * scale)
          << where << ": " << t.name << " element " << i << " of this rank's slice";
  }
  // Every tensor of the model is held somewhere in the stages of this tp rank.
  EXPECT_EQ(seen.size(), global.size()) << where;
}

struct Layout {
  int tp, pp;
  bool split;  // backward in two halves, as zero-bubble pipelines run it
};

class ModelParallel : public ::testing::TestWithParam<Layout> {};

TEST_P(ModelParallel, ShardsAndStagesComputeTheOneRankModel) {
  const auto [tp, pp, split] = GetParam();
  static const Result reference = one_rank();
  std::vector<Result> results(static_cast<size_t>(tp));
  comm::CommOptions options;
  options.timeout = std::chrono::seconds(30);
  testing::run_inproc_group(tp, options, [&](comm::Communicator& comm) {
    CommunicatorTpGroup group(comm, Device::cpu());
    results[static_cast<size_t>(comm.rank())] =
        sharded(pp, comm.rank(), tp, tp > 1 ? &group : nullptr, split);
  });
  for (int r = 0; r < tp; r++)
    expect_slices_of(reference, results[static_cast<size_t>(r)],
                     "tp " + std::to_string(tp) + " x pp " + std::to_string(pp) +
                         (split ? " split" : "") + ", tp rank " + std::to_string(r));
}

INSTANTIATE_TEST_SUITE_P(Layouts, ModelParallel,
                         ::testing::Values(Layout{1, 1, false}, Layout{2, 1, false},
                                           Layout{4, 1, false}, Layout{1, 2, false},
                                           Layout{1, 4, false}, Layout{2, 2, false},
                                           Layout{1, 1, true}, Layout{2, 2, true}),
                         [](const auto& info) {
                           return "tp" + std::to_string(info.param.tp) + "_pp" +
                                  std::to_string(info.param.pp) +
                                  (info.param.split ? "_split" : "");
                         });

// The same global weights whatever the layout: each rank's slices are the one-rank weights'.
TEST(ModelParallelInit, EveryLayoutHoldsSlicesOfTheSameWeights) {
  GptLayout whole_layout(kConfig);
  std::vector<float> whole(whole_layout.total());
  whole_layout.init_params(whole.data(), kSeed);
  std::map<std::string, const ParamTensor*> by_name;
  for (const ParamTensor& t : whole_layout.tensors()) by_name[t.name] = &t;
  for (int tp : {2, 4})
    for (int pp : {1, 2})
      for (int s = 0; s < pp; s++)
        for (int r = 0; r < tp; r++) {
          GptLayout layout(kConfig, StagePlan::of(kConfig, s, pp, r, tp));
          std::vector<float> mine(layout.total());
          layout.init_params(mine.data(), kSeed);
          for (const ParamTensor& t : layout.tensors()) {
            std::vector<float> want(t.count);
            models::copy_slice(t, whole.data() + by_name.at(t.name)->offset, want.data());
            ASSERT_TRUE(std::equal(want.begin(), want.end(), mine.begin() + t.offset))
                << t.name << " on stage " << s << " tp rank " << r << " of " << tp;
          }
        }
}

TEST(ModelParallelInit, LayoutsThatCannotCutTheModelSayWhichNumberToChange) {
  auto message = [](StagePlan plan) {
    try {
      GptLayout layout(kConfig, plan);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  StagePlan three_way;
  three_way.tp_size = 3;
  EXPECT_NE(message(three_way).find("--heads 4 cannot be split over --tp 3"), std::string::npos)
      << message(three_way);
  try {
    StagePlan::of(kConfig, 0, 3, 0, 1);
    ADD_FAILURE() << "4 layers over 3 stages accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("make --layers a multiple of 3"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace weft::parallel
