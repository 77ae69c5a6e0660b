#include "train/step_log.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace weft::train {
namespace {

StepStats stats(int step, double ms, double tokens_per_s, double comm, double exposed) {
  StepStats s;
  s.step = step;
  s.loss = 5.0 - step;
  s.ms_step = ms;
  s.tokens_per_s = tokens_per_s;
  s.model_gflops = tokens_per_s * 1e-3;
  s.ms_comm = comm;
  s.ms_comm_exposed = exposed;
  return s;
}

TEST(StepLog, SummaryIsWorkOverTimeAfterTheWarmupSteps) {
  // 1000 tokens per step; the slow first step is left out.
  std::vector<StepStats> steps = {stats(1, 1000, 1000, 10, 10), stats(2, 100, 10000, 10, 1),
                                  stats(3, 400, 2500, 10, 3)};
  Summary s = summarize(steps, 2.5, 1.5, /*skip=*/1);
  EXPECT_EQ(s.steps, 3);
  EXPECT_DOUBLE_EQ(s.loss, 2.0);
  EXPECT_DOUBLE_EQ(s.ms_step, 250);
  EXPECT_DOUBLE_EQ(s.tokens_per_s, 2000 / 0.5);  // 2000 tokens in 0.5 s, not the mean of rates
  EXPECT_DOUBLE_EQ(s.model_gflops, 4.0);
  EXPECT_DOUBLE_EQ(s.comm_hidden, 1.0 - 4.0 / 20.0);
  EXPECT_NE(summary_line(s).find("summary: steps=3 loss=2.0000 eval_loss=2.5000 "
                                 "tokens_per_s=4000.0"),
            std::string::npos)
      << summary_line(s);
}

TEST(StepLog, JsonLinesCarryTheFieldsTheBenchmarksRead) {
  auto j = nlohmann::json::parse(json_line(stats(7, 10, 123, 2, 1)));
  for (const char* key : {"step", "loss", "lr", "tokens_per_s", "model_gflops", "ms_forward",
                          "ms_backward", "ms_comm_exposed", "ms_optimizer", "ms_step",
                          "comm_hidden", "grad_norm"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["step"], 7);
  auto e = nlohmann::json::parse(json_line(EvalStats{4, 2.0, 7.389}));
  EXPECT_EQ(e["eval_loss"], 2.0);
}

// A diverged run stops at its first non-finite loss or gradient norm, naming the step and value.
TEST(StepLog, DivergenceNamesTheStepAndTheValue) {
  StepStats s = stats(5, 10, 100, 0, 0);
  s.grad_norm = 0.5;
  EXPECT_EQ(divergence(s), "");
  s.loss = std::nan("");
  std::string m = divergence(s);
  EXPECT_NE(m.find("diverged at step 5: loss nan"), std::string::npos) << m;
  s.loss = 3;
  s.grad_norm = INFINITY;
  m = divergence(s);
  EXPECT_NE(m.find("step 5"), std::string::npos) << m;
  EXPECT_NE(m.find("gradient norm inf"), std::string::npos) << m;
  EXPECT_NE(m.find("--lr"), std::string::npos) << m;
}

// --log-json into a directory that does not exist is a usage error (exit 2), like other flags.
TEST(StepLog, ALogThatCannotOpenIsAUsageErrorNamingTheFlag) {
  try {
    JsonLog log("/nonexistent-weft-dir/log.json");
    FAIL() << "opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("--log-json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace weft::train
