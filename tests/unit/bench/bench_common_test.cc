// Unit tests of the benchmark programs' shared logic: flags, busbw, iteration policy, the check
// pattern. No processes, no sockets.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_report.h"
#include "bench/check_pattern.h"
#include "bench/iteration_plan.h"
#include "runtime/buffer.h"

namespace weft::bench {
namespace {

// argv for FlagParser::parse from a list of words (argv[0] included).
struct Argv {
  explicit Argv(std::vector<std::string> words) : words_(std::move(words)) {
    for (std::string& w : words_) pointers_.push_back(w.data());
  }
  int argc() { return static_cast<int>(pointers_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> words_;
  std::vector<char*> pointers_;
};

TEST(BenchFlags, ParsesValuesSwitchesAndBothSpellings) {
  std::string sizes = "8";
  std::string iters;
  bool json = false;
  bool help = false;
  FlagParser flags("test");
  flags.add_value("sizes", "LIST", "sizes", &sizes);
  flags.add_value("iters", "N", "iterations", &iters);
  flags.add_switch("json", "json", &json);
  Argv args({"prog", "--sizes", "1K,2M", "--iters=7", "--json"});
  flags.parse(args.argc(), args.argv(), &help);
  EXPECT_EQ(sizes, "1K,2M");
  EXPECT_EQ(iters, "7");
  EXPECT_TRUE(json);
  EXPECT_FALSE(help);
}

TEST(BenchFlags, UnknownFlagNamesItAndListsTheValidOnes) {
  std::string sizes;
  bool help = false;
  FlagParser flags("test");
  flags.add_value("sizes", "LIST", "sizes", &sizes);
  Argv args({"prog", "--size", "8"});
  try {
    flags.parse(args.argc(), args.argv(), &help);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--size'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--sizes"), std::string::npos) << e.what();
  }
}

TEST(BenchFlags, MissingValueAndPositionalArgumentsAreErrors) {
  std::string sizes;
  bool help = false;
  FlagParser flags("test");
  flags.add_value("sizes", "LIST", "sizes", &sizes);
  Argv missing({"prog", "--sizes"});
  EXPECT_THROW(flags.parse(missing.argc(), missing.argv(), &help), UsageError);
  Argv positional({"prog", "64M"});
  EXPECT_THROW(flags.parse(positional.argc(), positional.argv(), &help), UsageError);
}

TEST(BenchFlags, HelpWinsOverEverythingElse) {
  bool help = false;
  FlagParser flags("test");
  Argv args({"prog", "--help", "--bogus"});
  flags.parse(args.argc(), args.argv(), &help);
  EXPECT_TRUE(help);
}

TEST(BenchFlags, SizeListUsesBinarySuffixes) {
  EXPECT_EQ(parse_size_list("8,1K,64M,1G", "sizes"),
            (std::vector<size_t>{8, 1024, 64u << 20, 1u << 30}));
  EXPECT_THROW(parse_size_list("8,,1K", "sizes"), UsageError);
  EXPECT_THROW(parse_size_list("1X", "sizes"), UsageError);
  EXPECT_THROW(parse_size_list("", "sizes"), UsageError);
}

TEST(BenchFlags, CountsAndChoices) {
  EXPECT_EQ(parse_count("", "iters", 0), 0u);
  EXPECT_EQ(parse_count("12", "iters", 0), 12u);
  EXPECT_THROW(parse_count("0", "iters", 0), UsageError);
  EXPECT_THROW(parse_count("3x", "iters", 0), UsageError);
  const std::vector<std::string> valid = {"allreduce", "broadcast"};
  EXPECT_EQ(parse_choice_list("broadcast,allreduce,broadcast", "ops", valid),
            (std::vector<std::string>{"broadcast", "allreduce"}));
  try {
    parse_choice("allreduse", "ops", valid);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("allreduce, broadcast"), std::string::npos) << e.what();
  }
}

TEST(BenchReport, BusbwFollowsNcclTests) {
  EXPECT_DOUBLE_EQ(busbw_factor("allreduce", 4), 1.5);
  EXPECT_DOUBLE_EQ(busbw_factor("allgather", 4), 0.75);
  EXPECT_DOUBLE_EQ(busbw_factor("reduce_scatter", 2), 0.5);
  EXPECT_DOUBLE_EQ(busbw_factor("broadcast", 8), 1.0);
  EXPECT_DOUBLE_EQ(busbw_factor("allreduce", 1), 0.0);

  Measurement m;
  m.op = "allreduce";
  m.backend = "shm";
  m.ranks = 2;
  m.bytes = 1'000'000;
  m.seconds_per_op = 1e-3;  // 1 GB/s algbw, x 2(n-1)/n = 1 on 2 ranks
  m.iters = 5;
  EXPECT_DOUBLE_EQ(m.algbw_gbs(), 1.0);
  EXPECT_DOUBLE_EQ(m.busbw_gbs(), 1.0);
  EXPECT_EQ(json_line(m),
            "{\"op\":\"allreduce\",\"backend\":\"shm\",\"ranks\":2,\"bytes\":1000000,"
            "\"time_us\":1000.000,\"algbw_gbs\":1.000000,\"busbw_gbs\":1.000000,\"iters\":5,"
            "\"path\":\"transport\"}");
}

TEST(BenchReport, FormatsBytes) {
  EXPECT_EQ(format_bytes(8), "8 B");
  EXPECT_EQ(format_bytes(1024), "1 KiB");
  EXPECT_EQ(format_bytes(64u << 20), "64 MiB");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
}

TEST(IterationPlan, ClampsToTheTargetTime) {
  IterationPolicy p;
  EXPECT_EQ(iterations_for(0.1, p), 3u);  // 0.3 s / 0.1 s, the minimum
  EXPECT_EQ(iterations_for(1.0, p), 3u);  // slow ops still run 3 times
  EXPECT_EQ(iterations_for(1e-3, p), 300u);
  EXPECT_EQ(iterations_for(0.0, p), p.max_iters);
}

TEST(IterationPlan, WarmUpDoublesUntilARoundIsLongThenRepeatsIt) {
  IterationPolicy p;
  p.warmup_seconds = 0.02;
  std::vector<size_t> rounds;
  // A fake op: each costs 5 ms of "slowest rank" time, whatever the local clock says.
  auto run_ops = [&rounds](size_t k) { rounds.push_back(k); };
  auto max_over_ranks = [&rounds](double) { return 0.005 * static_cast<double>(rounds.back()); };
  double estimate = warm_up_and_estimate(run_ops, max_over_ranks, p);
  EXPECT_EQ(rounds, (std::vector<size_t>{2, 4, 4}));  // 10 ms, 20 ms (long enough), repeat
  EXPECT_DOUBLE_EQ(estimate, 0.005);
}

// Every contender times a size through time_ops(): warm-up, then the ranks lined up, then the
// timed ops, reported as the slowest rank's mean.
TEST(IterationPlan, TimeOpsWarmsUpLinesUpThenTimesTheSlowestRank) {
  IterationPolicy p;
  std::vector<std::string> events;
  auto run_ops = [&events](size_t k) { events.push_back("run " + std::to_string(k)); };
  auto barrier = [&events] { events.push_back("barrier"); };
  // The slowest rank took 1 s per op, whatever this rank measured.
  auto max_over_ranks = [](double) { return 1.0; };
  Timing fixed = time_ops(7, run_ops, max_over_ranks, barrier, p);
  EXPECT_EQ(events, (std::vector<std::string>{"run 2", "barrier", "run 7"}));
  EXPECT_EQ(fixed.iters, 7u);
  EXPECT_DOUBLE_EQ(fixed.seconds_per_op, 1.0);

  events.clear();
  Timing adaptive = time_ops(0, run_ops, max_over_ranks, barrier, p);
  // Warm-up rounds say an op costs 0.5 s (1 s over 2 ops): 0.3 s target, so the minimum 3.
  EXPECT_EQ(events, (std::vector<std::string>{"run 2", "run 2", "barrier", "run 3"}));
  EXPECT_EQ(adaptive.iters, 3u);
}

TEST(CheckPattern, SumHasAClosedForm) {
  for (int ranks : {1, 2, 3, 5})
    for (size_t i : {0u, 1u, 4u, 5u, 12u}) {
      double sum = 0;
      for (int r = 0; r < ranks; ++r) sum += pattern_value(r, i);
      EXPECT_DOUBLE_EQ(pattern_sum(ranks, i), sum);
    }
}

TEST(CheckPattern, FindsTheFirstWrongElementInEveryDType) {
  for (DType dtype : kAllDTypes) {
    Buffer buffer(16 * dtype_size(dtype));
    Tensor t = buffer.view(dtype, 16);
    fill_pattern(t, 2, 0);
    EXPECT_EQ(check_elements(t, 1, [](size_t i) { return pattern_value(2, i); }), "")
        << dtype_name(dtype);
    fill_constant(t.slice(7, 1), 0);
    std::string wrong = check_elements(t, 1, [](size_t i) { return pattern_value(2, i); });
    EXPECT_NE(wrong.find("element 7 of 16"), std::string::npos) << dtype_name(dtype) << wrong;
  }
}

}  // namespace
}  // namespace weft::bench
