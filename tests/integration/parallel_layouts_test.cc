// The acid test of model parallelism (issue 13): however weft-train cuts the model (data, tensor
// and pipeline parallel sizes, the schedule, ZeRO-1), the job trains the same model as one rank.
// Every layout of 8 and of 4 ranks must reproduce, at each of 10 steps, the loss and gradient
// norm of one shared one-rank run of the same seed and global batch: only the order in which
// floating-point sums are taken differs. The ranks oversubscribe a small CI machine, so the
// model is tiny and the layouts run one after the other. Layouts that cannot work must stop
// before any work, on every rank, naming the number to change.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/train_harness.h"

namespace weft::testing {
namespace {

// A model every layout below can cut: 8 heads and the 256-token vocabulary split over tp up to
// 8; 8 layers into pp x virtual stages up to 8; 16 sequences in micro-batches of 2 leave
// 16 / (2 dp) micro-batches, at least pp (1f1b) and a multiple of pp (interleaved) wherever
// dp x pp <= 8. Several gradient buckets, and a learning rate that moves the loss within 10 steps.
// clang-format off
const Args kModel = {"--layers", "8", "--d-model", "32", "--heads", "8", "--seq", "16",
                     "--batch", "16", "--micro-batch", "2", "--steps", "10",
                     "--lr", "3e-3", "--warmup", "2", "--bucket-mb", "0.05", "--threads", "1"};
// clang-format on
constexpr size_t kSteps = 10;
constexpr double kLossTolerance = 1e-5;  // relative
constexpr double kNormTolerance = 1e-4;  // relative
// A 10-step run of the tiny model takes about a second; a layout that deadlocks is killed here
// and ends its test, so a test never outlives its ctest TIMEOUT.
constexpr std::chrono::seconds kRunTimeout{60};

struct Layout {
  int ranks, dp, tp, pp;
  std::string schedule;
  int virtual_stages;
  bool zero1;

  // What every failure names, in weft-train's own words ("dp 2 x tp 2 x pp 2, 1f1b").
  std::string layout() const {
    std::string s =
        "dp " + std::to_string(dp) + " x tp " + std::to_string(tp) + " x pp " + std::to_string(pp);
    return pp > 1 ? s + ", " + schedule : s;
  }
  std::string name() const {
    std::string s = std::to_string(ranks) + " ranks, " + layout();
    if (virtual_stages > 1) s += " (" + std::to_string(virtual_stages) + " virtual stages)";
    return zero1 ? s + ", --zero1" : s;
  }
  Args flags() const {
    Args f = {"--dp",
              std::to_string(dp),
              "--tp",
              std::to_string(tp),
              "--pp",
              std::to_string(pp),
              "--schedule",
              schedule,
              "--virtual-stages",
              std::to_string(virtual_stages)};
    if (zero1) f.push_back("--zero1");
    return f;
  }
};

// Every (dp, tp, pp) with dp x tp x pp = ranks whose pp is in `pps` (all when empty), each
// also with ZeRO-1 where dp > 1 (with dp 1 it has nothing to shard).
std::vector<Layout> layouts(int ranks, const std::string& schedule, int virtual_stages,
                            const std::vector<int>& pps = {}) {
  std::vector<Layout> out;
  for (int tp = 1; tp <= ranks; tp++)
    for (int pp = 1; pp * tp <= ranks; pp++) {
      if (ranks % (tp * pp) != 0) continue;
      if (!pps.empty() && std::find(pps.begin(), pps.end(), pp) == pps.end()) continue;
      const int dp = ranks / (tp * pp);
      out.push_back({ranks, dp, tp, pp, schedule, virtual_stages, false});
      if (dp > 1) out.push_back({ranks, dp, tp, pp, schedule, virtual_stages, true});
    }
  return out;
}

struct Curve {
  std::vector<double> loss, grad_norm;
};

class ParallelLayouts : public Train {
 protected:
  // The one-rank run every layout is compared with, trained once per test process.
  static std::optional<Curve>& reference() {
    static std::optional<Curve> curve;
    return curve;
  }

  void SetUp() override {
    Train::SetUp();
    if (reference()) return;
    Args flags = kModel;
    flags.insert(flags.end(), {"--log-json", (dir_ / "reference.json").string()});
    WeftrunResult r = train(1, flags, {}, {}, kRunTimeout);
    ASSERT_EQ(r.exit_code, 0) << "the one-rank reference\n" << r.out << r.err;
    Curve c{values("reference.json", "loss"), values("reference.json", "grad_norm")};
    ASSERT_EQ(c.loss.size(), kSteps) << r.out;
    ASSERT_EQ(c.grad_norm.size(), kSteps) << r.out;
    ASSERT_LT(c.loss.back(), c.loss.front()) << "the reference does not train at all";
    reference() = c;
  }

  // Trains `l` and compares it with the reference step by step; false when the run had to be
  // killed, which ends the test rather than waiting out the next layout's deadlock too.
  bool expect_reference_training(const Layout& l) {
    const std::string log = "run" + std::to_string(runs_++) + ".json";
    Args flags = kModel;
    flags.insert(flags.end(), {"--log-json", (dir_ / log).string()});
    const Args layout = l.flags();
    flags.insert(flags.end(), layout.begin(), layout.end());
    WeftrunResult r = train(l.ranks, flags, {}, {}, kRunTimeout);
    if (r.timed_out) {
      ADD_FAILURE() << l.name() << ": still running after " << kRunTimeout.count() << " s\n"
                    << r.out << r.err;
      return false;
    }
    if (r.exit_code != 0) {
      ADD_FAILURE() << l.name() << ": exit code " << r.exit_code << "\n" << r.out << r.err;
      return true;
    }
    // The run was cut as asked, not silently some other way.
    EXPECT_NE(first_line(r.out).find(l.layout()), std::string::npos) << l.name() << "\n" << r.out;
    const std::vector<double> loss = values(log, "loss"), norm = values(log, "grad_norm");
    if (loss.size() != kSteps || norm.size() != kSteps) {
      ADD_FAILURE() << l.name() << ": " << loss.size() << " losses and " << norm.size()
                    << " gradient norms logged, expected " << kSteps << "\n"
                    << r.out;
      return true;
    }
    const Curve& ref = *reference();
    for (size_t s = 0; s < kSteps; s++) {
      EXPECT_NEAR(loss[s], ref.loss[s], kLossTolerance * std::fabs(ref.loss[s]))
          << l.name() << ": loss at step " << s + 1;
      EXPECT_NEAR(norm[s], ref.grad_norm[s], kNormTolerance * std::fabs(ref.grad_norm[s]))
          << l.name() << ": gradient norm at step " << s + 1;
    }
    return true;
  }

  void expect_reference_training(const std::vector<Layout>& all) {
    for (const Layout& l : all)
      if (!expect_reference_training(l)) return;
  }

 private:
  int runs_ = 0;
};

TEST_F(ParallelLayouts, EveryLayoutOfEightRanksWith1F1BTrainsTheOneRankModel) {
  expect_reference_training(layouts(8, "1f1b", 1));
}

TEST_F(ParallelLayouts, EightRanksInterleavedAtPp2And4TrainTheOneRankModel) {
  expect_reference_training(layouts(8, "interleaved", 2, {2, 4}));
}

TEST_F(ParallelLayouts, EightRanksZeroBubbleAtPp2And4TrainTheOneRankModel) {
  expect_reference_training(layouts(8, "zb", 1, {2, 4}));
}

TEST_F(ParallelLayouts, EveryLayoutOfFourRanksWith1F1BTrainsTheOneRankModel) {
  expect_reference_training(layouts(4, "1f1b", 1));
}

TEST_F(ParallelLayouts, FourRanksInterleavedAtPp2And4TrainTheOneRankModel) {
  expect_reference_training(layouts(4, "interleaved", 2, {2, 4}));
}

TEST_F(ParallelLayouts, FourRanksZeroBubbleAtPp2And4TrainTheOneRankModel) {
  expect_reference_training(layouts(4, "zb", 1, {2, 4}));
}

// A job cut by --dp/--tp/--pp, seen from the command line.
class HybridJob : public Train {};

// What the user sees of a hybrid job: the layout and the schedule's own idle fraction in the
// first line, the measured idle fraction in every step line and in the JSON log.
TEST_F(HybridJob, ShowsItsLayoutAndPipelineIdleInItsProgressLines) {
  Args flags = kModel;
  flags.insert(flags.end(), {"--dp", "2", "--tp", "2", "--pp", "2", "--schedule", "1f1b",
                             "--log-json", (dir_ / "log.json").string()});
  // In place from the first byte: the tiny model's buckets are under WEFT_DIRECT_BYTES.
  WeftrunResult r = train(8, flags, {"WEFT_DIRECT_BYTES=0"}, {}, kRunTimeout);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_FALSE(lines.empty()) << r.err;
  EXPECT_NE(lines[0].find("| dp 2 x tp 2 x pp 2, 1f1b, 4 micro-batches, schedule's idle "),
            std::string::npos)
      << lines[0];
  int steps = 0;
  for (const std::string& line : lines) {
    if (line.rfind("[rank 0] step ", 0) != 0) continue;
    steps++;
    EXPECT_NE(line.find("| pipeline idle "), std::string::npos) << line;
    EXPECT_EQ(line.back(), '%') << line;
  }
  EXPECT_EQ(steps, int(kSteps)) << r.out;
  EXPECT_EQ(count_of(r.out, "step "), int(kSteps)) << "only the first rank reports\n" << r.out;
  EXPECT_NE(r.out.find("[rank 0] summary: steps=10"), std::string::npos) << r.out;
  // The dp groups' gradient buckets live in registered memory, so over shm (one node) they
  // reduce in place, and the summary says so.
  const size_t buckets = r.out.find("gradient buckets: ");
  ASSERT_NE(buckets, std::string::npos) << r.out;
  EXPECT_GT(std::stoull(r.out.substr(buckets + 18)), 0u) << r.out;
  const std::vector<double> idle = values("log.json", "pipeline_idle");
  ASSERT_EQ(idle.size(), kSteps);
  for (double f : idle) {
    EXPECT_GT(f, 0.0);  // two stages always wait for each other at the ends of a step
    EXPECT_LT(f, 1.0);
  }
}

// A layout that cannot work stops before step 1 with exit 2 on every rank, each saying which
// number to change to what. weftrun's grace is long here so that no rank is stopped by weftrun
// before it has refused the layout itself.
TEST_F(HybridJob, ImpossibleLayoutsStopOnEveryRankBeforeAnyWork) {
  struct Case {
    Args flags;
    std::string message;
    int ranks = 4;
  };
  for (const Case& c : {
           Case{{"--tp", "3"},
                "--tp 3 x --pp 1 does not divide the 4 ranks: launch a multiple of 3 ranks, or "
                "change --tp/--pp"},
           Case{{"--dp", "4", "--tp", "2"},
                "--dp 4 x --tp 2 x --pp 1 = 8 is not the 4 ranks: set --dp 2 or leave it out"},
           Case{{"--tp", "4", "--heads", "2"},
                "--heads 2 cannot be split over --tp 4: make --heads a multiple of 4"},
           Case{{"--tp", "3", "--heads", "3", "--d-model", "48"},
                "the vocabulary (256 byte tokens) cannot be split over --tp 3: use a --tp that "
                "divides it",
                3},
           Case{{"--pp", "4", "--layers", "6"},
                "--layers 6 cannot be cut into --pp 4 x --virtual-stages 1 stages of equal "
                "size: make --layers a multiple of 4"},
           Case{{"--pp", "4", "--batch", "4"},
                "schedule 1f1b needs at least as many micro-batches as stages: got 2 "
                "micro-batches for 4 stages; use --batch so that micro-batches >= 4"},
           Case{
               {"--pp", "4", "--schedule", "interleaved", "--virtual-stages", "2", "--batch", "20"},
               "schedule interleaved needs micro-batches to be a multiple of the pipeline "
               "stages: got 10 micro-batches for 4 stages; use --batch so that micro-batches "
               "is a multiple of 4"},
       }) {
    Args flags = kModel;
    flags.insert(flags.end(), c.flags.begin(), c.flags.end());
    WeftrunResult r = train(c.ranks, flags, {}, {"--grace", "30"}, kRunTimeout);
    std::string what;
    for (const std::string& f : c.flags) what += " " + f;
    EXPECT_EQ(r.exit_code, 2) << what << "\n" << r.out << r.err;
    const std::string all = "ranks 0-" + std::to_string(c.ranks - 1) + ": exited with code 2";
    EXPECT_NE(r.err.find(all), std::string::npos) << what << "\n" << r.err;
    for (int rank = 0; rank < c.ranks; rank++) {
      const std::string expected =
          "[rank " + std::to_string(rank) + "] weft-train: InvalidArgument: " + c.message;
      EXPECT_NE(r.err.find(expected), std::string::npos) << what << ": " << expected << "\n"
                                                         << r.err;
    }
    EXPECT_EQ(r.out.find("step "), std::string::npos) << what << "\n" << r.out;
    EXPECT_EQ(r.out.find("parameters ("), std::string::npos) << what << "\n" << r.out;
  }
}

}  // namespace
}  // namespace weft::testing
