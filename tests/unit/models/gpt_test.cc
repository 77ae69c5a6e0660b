// The GPT model: its parameter layout against published sizes, its initialisation, and its
// backward against central finite differences of its forward.
#include "models/gpt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/error.h"

namespace weft::models {
namespace {

TEST(GptLayout, Gpt2SmallHasThePublishedParameterCount) {
  // GPT-2 124M (Radford et al. 2019; HuggingFace's gpt2): 124,439,808 parameters.
  GptConfig c{.layers = 12, .d_model = 768, .heads = 12, .seq = 1024, .vocab = 50257,
              .padded_vocab = 50257};
  EXPECT_EQ(GptLayout(c).total(), 124'439'808u);
}

TEST(GptLayout, TensorsTileTheBufferInForwardOrder) {
  GptConfig c{.layers = 2, .d_model = 8, .heads = 2, .seq = 4};
  GptLayout layout(c);
  size_t next = 0;
  for (const auto& t : layout.tensors()) {
    EXPECT_EQ(t.offset, next) << t.name;
    next += t.count;
  }
  EXPECT_EQ(next, layout.total());
  EXPECT_EQ(layout.tensors()[layout.block(1, kFcW)].name, "h1.fc.w");
  EXPECT_EQ(layout.tensors()[layout.lnf_b()].name, "lnf.b");
  EXPECT_TRUE(layout.tensors()[layout.block(0, kQkvW)].decay);
  EXPECT_FALSE(layout.tensors()[layout.block(0, kQkvB)].decay);
  EXPECT_FALSE(layout.tensors()[layout.block(0, kLn1W)].decay);
}

TEST(GptConfig, FlopsPerTokenCountsMatmulsAndCausalAttention) {
  GptConfig c{.layers = 2, .d_model = 8, .heads = 2, .seq = 4, .vocab = 10, .padded_vocab = 16};
  // Per layer 12 C^2 matmul weights, plus the 16 x 8 LM head; attention 6 L T C.
  double expected = 6.0 * (2 * 12 * 64 + 16 * 8) + 6.0 * 2 * 4 * 8;
  EXPECT_DOUBLE_EQ(c.flops_per_token(), expected);
}

TEST(GptConfig, HeadsMustDivideTheWidth) {
  GptConfig c{.layers = 1, .d_model = 10, .heads = 4, .seq = 4};
  try {
    c.validate();
    FAIL() << "expected InvalidArgument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("--heads 4 does not divide --d-model 10"),
              std::string::npos)
        << e.what();
  }
}

TEST(GptInit, FollowsGpt2SchemeAndTheSeed) {
  GptConfig c{.layers = 4, .d_model = 64, .heads = 4, .seq = 32};
  Gpt model(kernels::cpu::CpuContext(1), c, 1);
  const GptLayout& layout = model.layout();
  std::vector<float> a(layout.total()), b(layout.total()), d(layout.total());
  model.init_params(a.data(), 7);
  model.init_params(b.data(), 7);
  model.init_params(d.data(), 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, d);
  auto stddev = [&](int index) {
    const ParamTensor& t = layout.tensors()[index];
    double sum = 0, sq = 0;
    for (size_t i = 0; i < t.count; i++) {
      sum += a[t.offset + i];
      sq += double(a[t.offset + i]) * a[t.offset + i];
    }
    double mean = sum / t.count;
    return std::sqrt(sq / t.count - mean * mean);
  };
  EXPECT_NEAR(stddev(layout.wte()), 0.02, 0.001);
  EXPECT_NEAR(stddev(layout.block(1, kFcW)), 0.02, 0.001);
  EXPECT_NEAR(stddev(layout.block(1, kFcProjW)), 0.02 / std::sqrt(8.0), 0.0005);
  const ParamTensor& ln = layout.tensors()[layout.block(2, kLn2W)];
  for (size_t i = 0; i < ln.count; i++) ASSERT_EQ(a[ln.offset + i], 1.0f);
  const ParamTensor& bias = layout.tensors()[layout.block(2, kFcB)];
  for (size_t i = 0; i < bias.count; i++) ASSERT_EQ(a[bias.offset + i], 0.0f);
}

struct TinyModel {
  GptConfig config{.layers = 2, .d_model = 8, .heads = 2, .seq = 5, .vocab = 11,
                   .padded_vocab = 12};
  int batch = 2;
  Gpt model{kernels::cpu::CpuContext(1), config, batch};
  std::vector<float> params;
  std::vector<int32_t> inputs, targets;

  // The mean loss of a forward.
  float loss(const int32_t* in, const int32_t* target, int B) {
    model.forward(params.data(), in, target, B);
    return model.mean_loss();
  }

  TinyModel() : params(model.layout().total()) {
    // Weights far larger than GPT-2's 0.02, so every path carries a gradient well above the
    // finite differences' f32 noise.
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    for (float& p : params) p = u(rng);
    std::uniform_int_distribution<int> tok(0, config.vocab - 1);
    for (int i = 0; i < batch * config.seq; i++) {
      inputs.push_back(tok(rng));
      targets.push_back(tok(rng));
    }
  }
};

TEST(GptBackward, MatchesFiniteDifferencesInEveryTensor) {
  TinyModel m;
  std::vector<float> grads(m.params.size(), 0.0f);
  m.model.forward(m.params.data(), m.inputs.data(), m.targets.data(), m.batch);
  std::vector<int> ready;
  m.model.backward(m.params.data(), grads.data(), 1.0f / (m.batch * m.config.seq),
                   [&](int p) { ready.push_back(p); });

  // Every tensor reported ready exactly once, lnf first and the embeddings last.
  const auto& tensors = m.model.layout().tensors();
  ASSERT_EQ(ready.size(), tensors.size());
  EXPECT_EQ(ready.front(), m.model.layout().lnf_b());
  EXPECT_EQ(ready.back(), m.model.layout().wte());

  std::mt19937 rng(5);
  const float h = 1e-2f;
  for (size_t t = 0; t < tensors.size(); t++) {
    // A few elements of each tensor (the padded vocabulary rows of wte included).
    for (int k = 0; k < 4; k++) {
      size_t i = tensors[t].offset + rng() % tensors[t].count;
      float saved = m.params[i];
      m.params[i] = saved + h;
      double plus = m.loss(m.inputs.data(), m.targets.data(), m.batch);
      m.params[i] = saved - h;
      double minus = m.loss(m.inputs.data(), m.targets.data(), m.batch);
      m.params[i] = saved;
      double numeric = (plus - minus) / (2.0 * h);
      EXPECT_NEAR(grads[i], numeric, 2e-3 + 2e-2 * std::fabs(numeric))
          << tensors[t].name << " element " << i - tensors[t].offset;
    }
  }
}

TEST(GptBackward, MicroBatchesAccumulateToTheWholeBatch) {
  TinyModel m;
  const size_t T = m.config.seq;
  std::vector<float> whole(m.params.size(), 0.0f), parts(m.params.size(), 0.0f);
  float loss = m.loss(m.inputs.data(), m.targets.data(), 2);
  m.model.backward(m.params.data(), whole.data(), 1.0f / (2 * T));
  float loss_parts = 0;
  for (int b = 0; b < 2; b++) {
    loss_parts += m.loss(m.inputs.data() + b * T, m.targets.data() + b * T, 1) / 2;
    m.model.backward(m.params.data(), parts.data(), 1.0f / (2 * T));
  }
  EXPECT_NEAR(loss, loss_parts, 1e-5);
  for (size_t i = 0; i < whole.size(); i++) ASSERT_NEAR(whole[i], parts[i], 1e-6) << i;
}

}  // namespace
}  // namespace weft::models
