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
// with the optimizer state sharded, and with two lanes per rank) give the same loss at every
// step. The micro-batch is the same everywhere, so only the order in which gradients are
// summed differs. The runs with lanes are the ones where lane threads report gradients ready
// while buckets are reduced on the executor's thread: `make test-tsan` runs this test for them.
TEST_F(Train, OneTwoAndFourRanksGiveTheSameLossesWithAndWithoutZero1) {
  const Args model = {"--layers", "2", "--d-model", "64", "--heads", "4", "--seq", "32",
                      "--batch", "8", "--micro-batch", "2", "--steps", "10", "--lr", "3e-3",
                      "--warmup", "2", "--bucket-mb", "0.05"};  // several buckets
  struct Run {
    int ranks;
    bool zero1;
    int lanes = 0;  // 0: weft-train's default threads (cores / ranks)
  };
  std::vector<std::vector<double>> results;
  for (Run run : {Run{1, false}, Run{2, false}, Run{4, false}, Run{2, true}, Run{4, true},
                  Run{2, false, 2}, Run{2, true, 2}}) {
    std::string log = "r" + std::to_string(run.ranks) + (run.zero1 ? "z" : "") + "l" +
                      std::to_string(run.lanes) + ".json";
    Args flags = model;
    flags.insert(flags.end(), {"--log-json", (dir_ / log).string()});
    if (run.zero1) flags.push_back("--zero1");
    if (run.lanes > 0) flags.insert(flags.end(), {"--threads", std::to_string(run.lanes)});
    WeftrunResult r = train(run.ranks, flags);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    if (run.lanes > 0) {
      const std::string lanes = "as " + std::to_string(run.lanes) + " lanes";
      EXPECT_NE(r.out.find(lanes), std::string::npos) << r.out;
    }
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

// Every usage error exits 2, before any work, naming the flag: a malformed or non-finite
// value, a log that cannot be opened, a shape too big for the machine's memory.
TEST_F(Train, BadFlagsFailFastWithAClearMessage) {
  struct Case {
    Args flags;
    std::string message;
  };
  for (const Case& c :
       {Case{{"--batch", "7"}, "--batch 7 is not divisible by the 2"},
        Case{{"--heads", "5"}, "--heads 5 does not divide --d-model 256"},
        Case{{"--backend", "pigeon"}, "--backend: unknown backend 'pigeon': use one of auto, tcp"},
        Case{{"--lr", "nan"}, "--lr must be a finite number, got nan"},
        Case{{"--log-json", (dir_ / "missing" / "log.json").string()}, "check --log-json"},
        Case{{"--d-model", "100000"}, "of memory, but only"}}) {
    WeftrunResult r = train(2, c.flags);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("InvalidArgument: InvalidArgument"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("step "), std::string::npos) << r.out;
    EXPECT_LT(r.seconds, 10.0);
  }
}

const Args kTiny = {"--layers", "1",  "--d-model", "32", "--heads", "2",
                    "--seq",    "16", "--batch",   "4",  "--steps", "2"};

Args tiny(Args more) {
  Args flags = kTiny;
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

// One precedence: weft-train's --backend, then WEFT_BACKEND (which weftrun --backend sets),
// then auto (shm, since the ranks share this machine).
TEST_F(Train, TheBackendComesFromTheFlagThenWeftBackendThenAuto) {
  struct Case {
    Args env, weftrun_flags, flags;
    std::string backend;
  };
  for (const Case& c : {Case{{"WEFT_BACKEND=tcp"}, {}, {}, "over tcp"},
                        Case{{}, {"--backend", "tcp"}, {}, "over tcp"},
                        Case{{"WEFT_BACKEND=tcp"}, {"--backend", "shm"}, {}, "over shm"},
                        Case{{"WEFT_BACKEND=tcp"}, {}, {"--backend", "shm"}, "over shm"},
                        Case{{}, {}, {}, "over shm"}}) {
    WeftrunResult r = train(2, tiny(c.flags), c.env, c.weftrun_flags);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    const std::string line = first_line(r.out);
    EXPECT_NE(line.find("2 ranks " + c.backend + " |"), std::string::npos) << line;
    EXPECT_NE(line.find("| 1 thread/rank ("), std::string::npos) << line;  // not "1 threads"
  }
}

// One job, one configuration: ranks given different flags (here by a wrapper that builds each
// rank's command line) stop before step 1, every one naming the flags and each rank's value.
TEST_F(Train, RanksStartedWithDifferentFlagsStopBeforeStepOne) {
  std::string command = std::string("exec ") + WEFT_TRAIN_PATH;
  for (const std::string& flag : kTiny) command += " " + flag;
  command += " --seed $((WEFT_RANK + 1)) --lr $([ $WEFT_RANK = 0 ] && echo 1e-3 || echo 5e-3)";
  WeftrunProcess p({"-n", "2", "--", "sh", "-c", command});
  WeftrunResult r = p.finish(60s);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(r.out.find("step "), std::string::npos) << r.out;
  for (const char* rank : {"[rank 0] ", "[rank 1] "}) {
    const std::string expected = std::string(rank) +
                                 "weft-train: InvalidArgument: the ranks were started with "
                                 "different flags, so their replicas would train different "
                                 "models: --lr (0.001 on rank 0; 0.005 on rank 1), --seed (1 "
                                 "on rank 0; 2 on rank 1)";
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  }
  EXPECT_LT(r.seconds, 30.0);
}

// A run that diverges stops at the first non-finite loss or gradient norm with exit 1, saying
// where, and its JSON log ends with that step (JSON has no NaN: the value is null).
TEST_F(Train, ADivergingRunStopsAtTheFirstNonFiniteStep) {
  const std::string log = (dir_ / "log.json").string();
  WeftrunResult r = train(2, {"--layers", "1", "--d-model", "32", "--heads", "2", "--seq", "16",
                              "--batch", "4", "--steps", "30", "--lr", "1e9", "--log-json", log});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.out.find("summary:"), std::string::npos) << r.out;
  std::ifstream in(log);
  std::vector<nlohmann::json> steps;
  for (std::string line; std::getline(in, line);) steps.push_back(nlohmann::json::parse(line));
  ASSERT_GE(steps.size(), 2u) << r.out;  // step 1's loss is the untrained model's
  ASSERT_LT(steps.size(), 30u) << r.out;
  const nlohmann::json& last = steps.back();
  EXPECT_TRUE(last["loss"].is_null() || last["grad_norm"].is_null()) << last;
  for (size_t i = 0; i + 1 < steps.size(); i++)
    EXPECT_TRUE(steps[i]["loss"].is_number() && steps[i]["grad_norm"].is_number()) << steps[i];
  const std::string where = "the run diverged at step " + std::to_string(int(last["step"])) + ":";
  for (const char* rank : {"[rank 0] weft-train: ", "[rank 1] weft-train: "})
    EXPECT_NE(r.err.find(rank + where), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ranks 0-1: exited with code 1"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace weft::testing
