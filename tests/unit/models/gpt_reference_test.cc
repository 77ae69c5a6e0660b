// weft's GPT, AdamW, clipping and schedule against an independent PyTorch implementation
// (tests/reference/gpt_torch_reference.py): same initial weights, same batches, same losses.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "train/lr_schedule.h"
#include "models/gpt.h"
#include "parallel/sharded_adamw.h"

namespace weft::models {
namespace {

// Output of tests/reference/gpt_torch_reference.py (PyTorch 1.13, CPU, f32).
const std::vector<double> kTorchLosses = {5.5594263, 5.5564809, 5.5356293, 5.4990611,
                                          5.5024843, 5.4847431, 5.4637165, 5.4840016};

TEST(GptReference, LossesMatchPyTorchStepForStep) {
  const GptConfig config{.layers = 2, .d_model = 32, .heads = 2, .seq = 16};
  const int batch = 4, steps = 8;
  const float clip = 1.0f;
  const kernels::cpu::CpuContext cpu(1);
  Gpt model(cpu, config, batch);
  const GptLayout& layout = model.layout();
  std::vector<float> params(layout.total()), grads(layout.total());
  model.init_params(params.data(), 1337);
  std::vector<parallel::DecaySpan> spans;
  for (const auto& t : layout.tensors()) spans.push_back({t.offset, t.count, t.decay});
  parallel::ShardedAdamW adamw(cpu, {{0, layout.total()}}, spans, {.weight_decay = 0.1f});
  train::LrSchedule schedule{.peak = 3e-3, .warmup = 2, .steps = steps};

  std::vector<int32_t> inputs(batch * config.seq), targets(inputs.size());
  for (int step = 1; step <= steps; step++) {
    // The pattern of the Python script's batch().
    for (int b = 0; b < batch; b++)
      for (int t = 0; t < config.seq; t++) {
        int x = (step * 131 + b * 31 + t * t * 7 + t * 3) % 256;
        inputs[b * config.seq + t] = x;
        targets[b * config.seq + t] = (x * 5 + 3) % 256;
      }
    model.forward(params.data(), inputs.data(), targets.data(), batch);
    double loss = model.mean_loss();
    EXPECT_NEAR(loss, kTorchLosses[step - 1], 2e-6 * kTorchLosses[step - 1]) << "step " << step;
    std::fill(grads.begin(), grads.end(), 0.0f);
    model.backward(params.data(), grads.data(), 1.0f / (batch * config.seq));
    double norm = std::sqrt(adamw.owned_grad_square_sum(grads.data()));
    if (norm > clip) adamw.scale_grads(grads.data(), static_cast<float>(clip / (norm + 1e-6)));
    adamw.step(params.data(), grads.data(), static_cast<float>(schedule.at(step)), step);
  }
}

}  // namespace
}  // namespace weft::models
