// Exact resume: a job that loses a rank, or is preempted, and goes on from its newest committed
// checkpoint trains the very losses of a job that was never interrupted, bit for bit (same layout;
// the data position is the step, and the checkpoint holds the parameters and AdamW's moments).
//   - kill -9 of one of 4 ranks after step 17, checkpoints every 5, under weftrun --elastic: the
//     new generation resumes from step 15 (or 10) and its steps 16..30 are the uninterrupted
//     run's;
//   - a rank killed and then failing on every start at 4 ranks: weftrun shrinks the job, which
//     resumes at dp 2 with the same global batch: the same losses up to the order of the sums;
//   - SIGTERM to weftrun mid-run: the ranks agree on a step, commit it, exit 75 (so does
//     weftrun), and a relaunch with --resume finishes with the uninterrupted losses;
//   - SIGUSR1 to one rank alone (a signal reaches ranks at different moments): every rank still
//     stops after the same step.
#include <signal.h>

#include <regex>

#include "tests/integration/elastic_harness.h"

namespace weft::testing {
namespace {

// About 70 ms a step with 4 ranks on 2 cores: a fault lands within a step of where it is aimed.
const Args kModel = {"--layers", "2",    "--d-model", "128", "--heads",   "4",
                     "--seq",    "64",   "--batch",   "8",   "--steps",   "30",
                     "--lr",     "3e-3", "--warmup",  "3",   "--threads", "1"};
constexpr int kSteps = 30;

class ExactResume : public ElasticTrain {
 protected:
  void SetUp() override {
    ElasticTrain::SetUp();
    WeftrunResult r =
        run_weftrun(job(4, {}, "exec \"$@\"", kModel, {"--log-json", path("ref.json")}));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    reference_ = losses("ref.json");
    ASSERT_EQ(reference_.size(), static_cast<size_t>(kSteps));
  }

  // Every step's loss equals the uninterrupted run's, from `first` to the last.
  void expect_reference_losses(const std::map<int, double>& loss, int first) {
    for (int step = first; step <= kSteps; ++step) {
      ASSERT_TRUE(loss.count(step)) << "no loss for step " << step;
      EXPECT_EQ(loss.at(step), reference_[step - 1]) << "step " << step;
    }
  }

  // The step a preempted job stopped after, from rank 0's line; -1 when there is none.
  static int preempted_step(const std::string& out, const std::string& signal) {
    std::smatch m;
    std::regex line("preempted by " + signal + ": stopped after step (\\d+), whose checkpoint");
    return std::regex_search(out, m, line) ? std::stoi(m[1]) : -1;
  }

  std::vector<double> reference_;
};

TEST_F(ExactResume, AfterKillMinus9OfOneOfFourRanksTheLossesAreThoseOfAnUninterruptedRun) {
  const std::string log = path("elastic.json");
  // Rank 1 of the first generation dies (SIGKILL) once rank 0 has logged step 17.
  const std::string killed_after_17 =
      "if [ \"$WEFT_RANK\" = 1 ] && [ \"$WEFT_RESTART_COUNT\" = 0 ]; then " +
      after_logged(log, 17, "echo \"killing rank 1\"; kill -9 $$") + " fi; exec \"$@\"";
  WeftrunProcess p(job(4, {"--elastic", "--grace", "1"}, killed_after_17, kModel,
                       {"--ckpt-dir", path("ckpt"), "--ckpt-every", "5", "--log-json", log}));
  ASSERT_TRUE(p.wait_for_stdout("killing rank 1", 1, 120s)) << p.out() << p.err();
  const SteadyClock::time_point killed = SteadyClock::now();
  ASSERT_TRUE(p.wait_for_stderr("PeerLost", 3, 30s)) << p.out() << p.err();
  const SteadyClock::time_point aborted = SteadyClock::now();
  ASSERT_TRUE(p.wait_for_stdout("resumed from", 1, 60s)) << p.out() << p.err();
  ASSERT_TRUE(p.wait_for_stdout("step   16/30", 2, 60s)) << p.out() << p.err();
  const SteadyClock::time_point resumed = SteadyClock::now();
  WeftrunResult r = p.finish(180s);
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  EXPECT_TRUE(contains(r.err, "rank 1 was killed by signal SIGKILL (9)")) << r.err;
  EXPECT_TRUE(contains(r.err, "weftrun: restart 1 of at most 3: generation 2 at 4 ranks")) << r.err;
  // The newest step committed before the kill: 15, or 10 when the shards of 15 were still being
  // written (a loaded machine); either way the new generation computes steps 16..30 again.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(continuing after step (\d+))"))) << r.out;
  const int from = std::stoi(m[1]);
  EXPECT_TRUE(from == 15 || from == 10) << r.out;
  // The log: the first generation's steps up to the kill, then the second's from the checkpoint.
  std::vector<double> steps = values("elastic.json", "step");
  auto restart =
      std::adjacent_find(steps.begin(), steps.end(), [](double a, double b) { return b <= a; });
  ASSERT_NE(restart, steps.end()) << "the log shows no restart";
  EXPECT_GE(*restart, 17);
  EXPECT_EQ(*(restart + 1), from + 1);
  expect_reference_losses(last_loss_of_each_step("elastic.json"), from + 1);

  std::printf(
      "kill -9 of rank 1 of 4: to the 3 survivors aborted with PeerLost %.2f s; to the "
      "restarted job's step 16 (resumed after step %d) %.2f s\n",
      seconds_between(killed, aborted), from, seconds_between(killed, resumed));
  RecordProperty("abort_ms", static_cast<int>(seconds_between(killed, aborted) * 1000));
  RecordProperty("resume_ms", static_cast<int>(seconds_between(killed, resumed) * 1000));
}

// The elastic story whole: rank 3 is killed after step 10 and then fails on every start at 4
// ranks, so weftrun shrinks the job (3 ranks cannot split the batch of 8, so to 2), which resumes
// from its newest checkpoint (step 6 or 9) under dp 2 and trains the same global batches: the
// uninterrupted 4-rank losses, up to the order of the gradient sums.
TEST_F(ExactResume, AJobThatShrinksResumesFromItsCheckpointWithTheSameGlobalBatch) {
  const std::string log = path("shrink.json");
  const std::string fails_at_4 =
      "if [ \"$WEFT_WORLD_SIZE\" = 4 ] && [ \"$WEFT_RANK\" = 3 ]; then "
      "if [ \"$WEFT_RESTART_COUNT\" != 0 ]; then exit 1; fi; " +
      after_logged(log, 10, "kill -9 $$") + " fi; exec \"$@\"";
  WeftrunResult r = run_weftrun(job(
      4, {"--elastic", "--min-ranks", "2", "--grace", "1"}, fails_at_4, kModel,
      {"--micro-batch", "2", "--ckpt-dir", path("ckpt"), "--ckpt-every", "3", "--log-json", log}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.err,
                       "generation 3 at 3 ranks (was 4: rank 3 failed first in two "
                       "generations in a row at 4 ranks)"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "generation 4 at 2 ranks (was 3: the ranks refused 3 ranks"))
      << r.err;
  EXPECT_TRUE(contains(r.out, "batch 8 = dp 2 x 2 micro-batch(es) x 2")) << r.out;
  // The smaller job's checkpoints commit too: the coordinator keeps no report of an earlier
  // generation's ranks.
  EXPECT_TRUE(contains(r.out, "step-00000030 committed")) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(continuing after step (\d+))"))) << r.out;
  const int from = std::stoi(m[1]);
  EXPECT_GE(from, 6) << r.out;
  const std::map<int, double> loss = last_loss_of_each_step("shrink.json");
  for (int step = 1; step <= kSteps; ++step) {
    ASSERT_TRUE(loss.count(step)) << "no loss for step " << step;
    EXPECT_NEAR(loss.at(step), reference_[step - 1], 1e-5 * reference_[step - 1])
        << "step " << step;
  }
}

TEST_F(ExactResume, SigtermToWeftrunCommitsAStepAndAResumeFinishesWithTheSameLosses) {
  const Args ckpt = {"--ckpt-dir", path("ckpt"), "--ckpt-every", "5"};
  Args first = ckpt;
  first.insert(first.end(), {"--log-json", path("first.json")});
  WeftrunProcess p(job(4, {"--preempt-timeout", "60"}, "exec \"$@\"", kModel, first));
  ASSERT_TRUE(p.wait_for_stdout("step   12/30", 1, 120s)) << p.out() << p.err();
  const SteadyClock::time_point signalled = SteadyClock::now();
  p.send_signal(SIGTERM);
  WeftrunResult r = p.finish(120s);
  const double to_exit = seconds_between(signalled, SteadyClock::now());
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  EXPECT_EQ(r.exit_code, 75) << r.out << r.err;
  EXPECT_TRUE(contains(r.err,
                       "weftrun: the job was preempted: every rank saved its work and "
                       "stopped (exit status 75)"))
      << r.err;
  const int stopped = preempted_step(r.out, "SIGTERM");
  ASSERT_GE(stopped, 12) << r.out;
  ASSERT_LT(stopped, kSteps) << r.out;
  EXPECT_EQ(losses("first.json").size(), static_cast<size_t>(stopped));
  std::printf(
      "SIGTERM to weftrun after step 12: stopped after step %d, committed, all exited in "
      "%.2f s\n",
      stopped, to_exit);

  Args again = ckpt;
  again.insert(again.end(), {"--resume", "--log-json", path("second.json")});
  r = run_weftrun(job(4, {}, "exec \"$@\"", kModel, again));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "continuing after step " + std::to_string(stopped))) << r.out;
  std::map<int, double> loss = last_loss_of_each_step("first.json");
  for (const auto& [step, l] : last_loss_of_each_step("second.json")) loss[step] = l;
  EXPECT_EQ(last_loss_of_each_step("second.json").begin()->first, stopped + 1);
  expect_reference_losses(loss, 1);
}

TEST_F(ExactResume, SigusrOneToOneRankAloneStopsEveryRankAfterTheSameStep) {
  const std::string log = path("first.json");
  // Rank 2 alone gets SIGUSR1 once rank 0 has logged step 8 (as when a scheduler's notice
  // reaches the ranks one by one); weftrun gets no signal at all.
  const std::string notice_to_rank_2 =
      "if [ \"$WEFT_RANK\" = 2 ]; then " + after_logged(log, 8, "kill -USR1 $$") +
      " fi; exec \"$@\"";
  const Args ckpt = {"--ckpt-dir", path("ckpt"), "--ckpt-every", "5"};
  Args first = ckpt;
  first.insert(first.end(), {"--log-json", log});
  WeftrunResult r = run_weftrun(job(4, {}, notice_to_rank_2, kModel, first));
  EXPECT_EQ(r.exit_code, 75) << r.out << r.err;
  const int stopped = preempted_step(r.out, "SIGUSR1");
  ASSERT_GE(stopped, 8) << r.out;
  EXPECT_FALSE(contains(r.err, "weftrun: rank")) << r.err;  // no rank failed or was stopped

  Args again = ckpt;
  again.insert(again.end(), {"--resume", "--log-json", path("second.json")});
  r = run_weftrun(job(4, {}, "exec \"$@\"", kModel, again));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<int, double> loss = last_loss_of_each_step("first.json");
  for (const auto& [step, l] : last_loss_of_each_step("second.json")) loss[step] = l;
  expect_reference_losses(loss, 1);
}

}  // namespace
}  // namespace weft::testing
