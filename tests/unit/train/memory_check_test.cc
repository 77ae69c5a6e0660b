#include "train/memory_check.h"

#include <gtest/gtest.h>

#include "models/gpt_activations.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

// The estimate in double must count exactly what the model lays out and carves, so that it
// says the truth about shapes too big to build: for the whole model and for pipeline stages
// with a tensor-parallel share, with several micro-batches in flight.
TEST(MemoryCheck, EstimatesCountWhatTheModelAllocates) {
  for (models::GptConfig c :
       {models::GptConfig{}, models::GptConfig{2, 64, 4, 32}, models::GptConfig{4, 48, 6, 17}}) {
    EXPECT_EQ(c.parameters(), static_cast<double>(models::GptLayout(c).total()));
    std::vector<models::StagePlan> plans = {models::StagePlan{}};
    for (int stage = 0; stage < 2; stage++)
      for (int tp_rank = 0; tp_rank < 2; tp_rank++)
        plans.push_back(models::StagePlan::of(c, stage, 2, tp_rank, 2));
    for (const models::StagePlan& plan : plans) {
      const models::GptLayout layout(c, plan);
      const models::StageSizes z(layout);
      for (size_t batch : {1, 3}) {
        for (int slots : {1, 2}) {
          models::Carver<float> acts(nullptr), stats(nullptr);
          for (int k = 0; k < slots; k++) models::carve_activations(acts, stats, z, batch);
          models::carve_scratch(acts, z, batch);
          const models::GptMemory m = models::gpt_memory(z, static_cast<double>(batch), slots);
          EXPECT_EQ(m.elements, static_cast<double>(acts.used()));
          EXPECT_EQ(m.statistics, static_cast<double>(stats.used()));
        }
      }
    }
  }
}

TEST(MemoryCheck, ReadsMemAvailable) {
  EXPECT_EQ(mem_available("MemTotal:       32000000 kB\nMemFree:  100 kB\n"
                          "MemAvailable:   2048 kB\nBuffers: 1 kB\n"),
            2048.0 * 1024);
  EXPECT_FALSE(mem_available("MemTotal: 1 kB\n").has_value());
  EXPECT_TRUE(host_memory_available().has_value());  // Linux has it
}

TEST(MemoryCheck, LanesZero1AndTheWireAddToTheNeed) {
  TrainOptions o = parse_train_options({"--batch", "8"});
  o.resolve(2);
  const double P = o.model.parameters();
  const MemoryNeed one = host_memory_need(o, 2, 1);
  EXPECT_EQ(one.state, 4 * P * 2 + 8 * P);  // parameters, gradients, two moments
  EXPECT_EQ(host_memory_need(o, 2, 2).state, one.state + 4 * P);  // lane 1's gradients
  o.zero1 = true;
  EXPECT_EQ(host_memory_need(o, 2, 1).state, 4 * P * 2 + 4 * P);  // half the moments
  o.grad_dtype = "bf16";
  EXPECT_EQ(host_memory_need(o, 2, 1).state, 4 * P * 2 + 4 * P + 2 * P);
  o.ckpt_dir = "ckpt";  // the snapshot: parameters and this rank's half of the moments
  EXPECT_EQ(host_memory_need(o, 2, 1).state, 4 * P * 2 + 4 * P + 2 * P + 4 * P + 4 * P);
  EXPECT_GT(one.activations, 0);
}

// --d-model 100000 died in an allocation. Now: how much the flags need, how much there is, and
// which flags decide it, before anything is allocated.
TEST(MemoryCheck, TooBigSaysHowMuchAndNamesTheFlags) {
  TrainOptions o = parse_train_options({"--d-model", "100000"});
  o.resolve(1);
  const MemoryNeed need = host_memory_need(o, 1, 1);
  EXPECT_GT(need.total(), 1e12);
  try {
    check_memory_fits(o, need, 2, 16.0 * (1 << 30), "memory", "MemAvailable in /proc/meminfo");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    for (const char* text : {"per rank x 2 ranks", "TiB of memory", "only 16.0 GiB is available",
                             "MemAvailable in /proc/meminfo", "--d-model 100000", "--layers 4",
                             "--micro-batch 8", "--seq 128", "start fewer ranks"})
      EXPECT_NE(m.find(text), std::string::npos) << text << " in " << m;
  }
  TrainOptions small = parse_train_options({});
  small.resolve(1);
  check_memory_fits(small, host_memory_need(small, 1, 1), 1, 16.0 * (1 << 30), "memory", "x");
}

// Shapes whose element counts overflow 64 bits are still measured, not wrapped around.
TEST(MemoryCheck, HugeShapesDoNotOverflow) {
  TrainOptions o = parse_train_options(
      {"--d-model", "2000000000", "--heads", "1", "--seq", "2000000000", "--layers", "2000000000"});
  o.resolve(1);
  EXPECT_GT(host_memory_need(o, 1, 1).total(), 1e30);
  EXPECT_GT(gpu_memory_need(o, 1).total(), 1e30);
}

}  // namespace
}  // namespace weft::train
