// weft-train end to end under weftrun: data parallelism must not change the numbers, the demo
// model must learn, and bad flags must fail before any work.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/integration/train_harness.h"

namespace weft::testing {
namespace {

// The acid test of data parallelism: the same global batch and seed on 1, 2 and 4 ranks (and
// with the optimizer state sharded) give the same loss at every step. The micro-batch is the
// same everywhere, so only the order in which gradients are summed differs.
TEST_F(Train, OneTwoAndFourRanksGiveTheSameLossesWithAndWithoutZero1) {
  const Args model = {"--layers", "2", "--d-model", "64", "--heads", "4", "--seq", "32",
                      "--batch", "8", "--micro-batch", "2", "--steps", "10", "--lr", "3e-3",
                      "--warmup", "2", "--bucket-mb", "0.05"};  // several buckets
  struct Run {
    int ranks;
    bool zero1;
  };
  std::vector<std::vector<double>> results;
  for (Run run : {Run{1, false}, Run{2, false}, Run{4, false}, Run{2, true}, Run{4, true}}) {
    std::string log = "r" + std::to_string(run.ranks) + (run.zero1 ? "z" : "") + ".json";
    Args flags = model;
    flags.insert(flags.end(), {"--log-json", (dir_ / log).string()});
    if (run.zero1) flags.push_back("--zero1");
    WeftrunResult r = train(run.ranks, flags);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    results.push_back(losses(log));
    ASSERT_EQ(results.back().size(), 10u) << log;
  }
  const std::vector<double>& reference = results[0];
  EXPECT_LT(reference.back(), reference.front());  // it trains at all
  for (size_t run = 1; run < results.size(); run++)
    for (size_t step = 0; step < reference.size(); step++)
      EXPECT_NEAR(results[run][step], reference[step], 1e-5 * std::fabs(reference[step]))
          << "run " << run << " step " << step + 1;
}

TEST_F(Train, DemoModelLossFallsByAThirdInFiftySteps) {
  Args flags = split_words(WEFT_DEMO_FLAGS);
  flags.insert(flags.end(), {"--steps", "50", "--eval-every", "0", "--log-json",
                             (dir_ / "demo.json").string()});
  WeftrunResult r = train(2, flags);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<double> loss = losses("demo.json");
  ASSERT_EQ(loss.size(), 50u);
  EXPECT_LE(loss.back(), 0.7 * loss.front()) << "first " << loss.front() << " last " << loss.back();
  // The progress lines the user sees: every step, then the summary.
  EXPECT_EQ(count_of(r.out, "[rank 0] step "), 50);
  EXPECT_NE(r.out.find("[rank 0] summary: steps=50"), std::string::npos) << r.out;
  EXPECT_EQ(count_of(r.out, "[rank 1] step "), 0);  // only the first rank reports
}

TEST_F(Train, EvaluationIsLoggedAndTheLogIsAppendedAcrossRuns) {
  Args flags = {"--layers", "1", "--d-model", "32", "--heads", "2", "--seq", "16", "--batch",
                "4", "--steps", "4", "--eval-every", "2", "--log-json",
                (dir_ / "log.json").string()};
  for (int run = 0; run < 2; run++) {
    WeftrunResult r = train(2, flags);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("eval at step 2 | loss"), std::string::npos) << r.out;
  }
  std::ifstream in(dir_ / "log.json");
  int steps = 0, evals = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("eval_loss")) {
      evals++;
      EXPECT_NEAR(double(j["eval_ppl"]), std::exp(double(j["eval_loss"])), 1e-6);
    } else {
      steps++;
    }
  }
  EXPECT_EQ(steps, 8);
  EXPECT_EQ(evals, 4);
}

TEST_F(Train, BadFlagsFailFastWithAClearMessage) {
  struct Case {
    Args flags;
    std::string message;
  };
  for (const Case& c : {Case{{"--batch", "7"}, "--batch 7 is not divisible by the 2"},
                        Case{{"--heads", "5"}, "--heads 5 does not divide --d-model 256"},
                        Case{{"--backend", "pigeon"}, "--backend 'pigeon' is not one of"}}) {
    WeftrunResult r = train(2, c.flags);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_LT(r.seconds, 10.0);
  }
}

}  // namespace
}  // namespace weft::testing
