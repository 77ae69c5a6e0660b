// models::CudaGpt against the CPU model (models::Gpt) on a small random configuration: the same
// loss, the same gradients, every tensor reported ready once. f32 matches to rounding; bf16 to
// what an 8-bit mantissa allows.
#include "models/gpt_cuda.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "models/gpt.h"
#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;

models::GptConfig small_config() {
  models::GptConfig c;
  c.layers = 2;
  c.d_model = 64;
  c.heads = 4;
  c.seq = 32;
  c.vocab = 250;  // padded columns must get probability 0 and gradient 0
  c.padded_vocab = 256;
  return c;
}

struct Reference {
  float loss;
  std::vector<float> grads;
};

// The CPU model's loss and gradients (accumulated over one micro-batch) for these weights.
Reference cpu_reference(const models::GptConfig& c, const std::vector<float>& params,
                        const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets,
                        int B, float scale) {
  models::Gpt model(gpu_test::kCpu, c, B);
  std::vector<float> grads(params.size(), 0.0f);
  Reference r;
  model.forward(params.data(), inputs.data(), targets.data(), B);
  r.loss = model.mean_loss();
  model.backward(params.data(), grads.data(), scale);
  r.grads = std::move(grads);
  return r;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); i++) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

template <typename T>
class GptCudaTest : public gpu_test::KernelTest {
 protected:
  // Runs the GPU model on the same weights and tokens; returns its loss and gradients.
  Reference run(const models::GptConfig& c, const std::vector<float>& params,
                const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets, int B,
                float scale, std::vector<int>* ready) {
    models::CudaGpt<T> model(this->ctx(), c, B);
    auto d_params = DeviceArray<T>::from_floats(params);
    DeviceArray<T> d_grads(params.size());
    EXPECT_EQ(cudaMemsetAsync(d_grads.get(), 0, params.size() * sizeof(T), this->stream()),
              cudaSuccess);
    DeviceArray<int32_t> d_inputs(inputs), d_targets(targets);
    model.forward(d_params.get(), d_inputs.get(), d_targets.get(), B);
    Reference r;
    r.loss = model.mean_loss();
    model.backward(d_params.get(), d_grads.get(), scale, [ready](int p) { ready->push_back(p); });
    EXPECT_EQ(cudaStreamSynchronize(this->stream()), cudaSuccess);
    r.grads = d_grads.to_floats();
    return r;
  }
};
using StorageTypes = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(GptCudaTest, StorageTypes);

TYPED_TEST(GptCudaTest, MatchesTheCpuModel) {
  constexpr bool kBf16 = std::is_same_v<TypeParam, __nv_bfloat16>;
  const models::GptConfig c = small_config();
  const models::GptLayout layout(c);
  std::vector<float> params(layout.total());
  layout.init_params(params.data(), 5);
  params = gpu_test::representable<TypeParam>(params);  // what the GPU model computes with
  const int B = 3;
  const auto inputs = gpu_test::random_ints(static_cast<size_t>(B) * c.seq, 1, 0, c.vocab - 1);
  const auto targets = gpu_test::random_ints(inputs.size(), 2, 0, c.vocab - 1);
  const float scale = 1.0f / (B * c.seq);

  const Reference want = cpu_reference(c, params, inputs, targets, B, scale);
  std::vector<int> ready;
  const Reference got = this->run(c, params, inputs, targets, B, scale, &ready);

  EXPECT_NEAR(got.loss, want.loss, (kBf16 ? 2e-2 : 1e-5) * want.loss);
  if constexpr (kBf16) {
    EXPECT_GT(cosine(got.grads, want.grads), 0.99) << "bf16 gradients point elsewhere";
  } else {
    gpu_test::expect_close(got.grads, want.grads, 1e-3f, 1e-4f * gpu_test::max_abs(want.grads),
                           "gradients");
  }
  std::vector<int> each(layout.tensors().size(), 0);
  for (int p : ready) each.at(p)++;
  for (size_t p = 0; p < each.size(); p++)
    EXPECT_EQ(each[p], 1) << layout.tensors()[p].name << " reported " << each[p] << " times";
}

}  // namespace
}  // namespace weft
