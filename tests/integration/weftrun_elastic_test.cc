// weftrun --elastic with weft-train: a failed generation is ended and the ranks start again under
// a new one, at the same size or smaller with the same global batch. Each rank runs weft-train
// through `sh -c`, whose script injects the fault (a rank that cannot start at 4 ranks, a rank
// that stops itself mid-training), so the faults follow the rank's number and the generation.
#include <signal.h>

#include <chrono>
#include <cmath>

#include "tests/integration/elastic_harness.h"

namespace weft::testing {
namespace {

// Small enough for 4 ranks on 2 cores; --micro-batch 2 keeps every layout's micro-batch equal,
// so only the order of the gradient sums differs between sizes.
const Args kModel = {"--layers", "1",    "--d-model", "32", "--heads",       "2",
                     "--seq",    "16",   "--batch",   "8",  "--micro-batch", "2",
                     "--lr",     "3e-3", "--warmup",  "2",  "--threads",     "1"};

class Elastic : public ElasticTrain {
 protected:
  Args job(int ranks, const Args& weftrun_flags, const std::string& script, const Args& flags) {
    return ElasticTrain::job(ranks, weftrun_flags, script, kModel, flags);
  }
  std::string log(const std::string& name) { return path(name); }
};

// Rank 3 fails on every start at 4 ranks: weftrun restarts once at 4, then shrinks. 3 ranks
// cannot split the global batch of 8 (weft-train refuses: exit 2), so weftrun skips to 2, which
// trains the same global batch to the end: the losses of an uninterrupted 4-rank run.
TEST_F(Elastic, ARankThatFailsOnEveryStartShrinksTheJobWithTheSameGlobalBatch) {
  const Args steps = {"--steps", "6"};
  Args reference = steps;
  reference.insert(reference.end(), {"--log-json", log("four.json")});
  WeftrunResult r = run_weftrun(job(4, {}, "exec \"$@\"", reference));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  const std::string fails_at_4 =
      "if [ \"$WEFT_WORLD_SIZE\" = 4 ] && [ \"$WEFT_RANK\" = 3 ]; then "
      "echo 'rank 3 cannot start at 4 ranks' >&2; exit 1; fi; exec \"$@\"";
  Args flags = steps;
  flags.insert(flags.end(), {"--log-json", log("elastic.json")});
  WeftrunProcess p(job(4, {"--elastic", "--min-ranks", "2", "--max-restarts", "3", "--grace", "1"},
                       fails_at_4, flags));
  r = p.finish(120s);
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.err,
                       "weftrun: restart 1 of at most 3: generation 2 at 4 ranks (same "
                       "size); the last one ended because rank 3 exited with code 1"))
      << r.err;
  EXPECT_TRUE(contains(r.err,
                       "weftrun: restart 2 of at most 3: generation 3 at 3 ranks (was 4: "
                       "rank 3 failed first in two generations in a row at 4 ranks)"))
      << r.err;
  EXPECT_TRUE(contains(r.err,
                       "--batch 8 is not divisible by data-parallel ranks x micro-batch "
                       "= 3 x 2"))
      << r.err;
  EXPECT_TRUE(contains(r.err,
                       "weftrun: restart 3 of at most 3: generation 4 at 2 ranks (was 3: "
                       "the ranks refused 3 ranks"))
      << r.err;
  // The generation that finished: 2 ranks, each running 2 micro-batches of the same 8.
  EXPECT_TRUE(contains(r.out, "2 ranks over")) << r.out;
  EXPECT_TRUE(contains(r.out, "batch 8 = dp 2 x 2 micro-batch(es) x 2")) << r.out;

  std::vector<double> four = losses("four.json"), shrunk = losses("elastic.json");
  ASSERT_EQ(four.size(), 6u);
  ASSERT_EQ(shrunk.size(), 6u);  // no failed generation got as far as a step
  for (size_t i = 0; i < four.size(); ++i)
    EXPECT_NEAR(shrunk[i], four[i], 1e-5 * std::fabs(four[i])) << "step " << i + 1;
}

// A size that cannot shrink further ends the job with the failure, saying why.
TEST_F(Elastic, ARankThatKeepsFailingAtMinRanksEndsTheJob) {
  WeftrunResult r =
      run_weftrun(job(2, {"--elastic", "--max-restarts", "5", "--grace", "0.5"},
                      "if [ \"$WEFT_RANK\" = 1 ]; then exit 3; fi; exec \"$@\"", {"--steps", "2"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_of(r.err, "weftrun: restart "), 1) << r.err;
  EXPECT_TRUE(contains(r.err,
                       "weftrun: not restarting: rank 1 failed first in two generations "
                       "in a row at 2 ranks, and --min-ranks 2 forbids going smaller"))
      << r.err;
}

// Rank 2 stops itself (SIGSTOP) after step 30 of the first generation: its process lives and its
// connections stay open; the coordinator's heartbeat deadline finds it, the survivors fail with
// PeerLost naming it, and weftrun starts a new generation of 4 with a fresh rank 2, which
// continues from the newest checkpoint (every 20 steps).
TEST_F(Elastic, AHungRankIsFoundByItsHeartbeatAndTheJobRestartsWithAFreshOne) {
  constexpr double kHeartbeat = 2.0;
  const std::string first_log = log("gen1.json");
  const std::string stops_once =
      "if [ \"$WEFT_RANK\" = 2 ] && [ \"$WEFT_RESTART_COUNT\" = 0 ]; then " +
      after_logged(first_log, 30, "echo \"stopping rank 2 (pid $$)\"; kill -STOP $$", "0.02") +
      " fi; exec \"$@\"";
  WeftrunProcess p(job(
      4,
      {"--elastic", "--heartbeat-timeout", std::to_string(kHeartbeat), "--grace", "0.5",
       "--timeout", "60"},
      stops_once,
      {"--steps", "400", "--log-json", first_log, "--ckpt-dir", log("ckpt"), "--ckpt-every", "20"}));
  ASSERT_TRUE(p.wait_for_stdout("stopping rank 2", 1, 60s)) << p.out() << p.err();
  const SteadyClock::time_point stopped = SteadyClock::now();
  ASSERT_TRUE(p.wait_for_stderr("PeerLost", 3, 30s)) << p.out() << p.err();
  const SteadyClock::time_point detected = SteadyClock::now();
  ASSERT_TRUE(p.wait_for_stdout("parameters (", 2, 30s)) << p.out() << p.err();
  const SteadyClock::time_point rejoined = SteadyClock::now();
  ASSERT_TRUE(p.wait_for_stdout("resumed from", 1, 30s)) << p.out() << p.err();
  ASSERT_TRUE(p.wait_for_stdout("/400 | loss", count_of(p.out(), "/400 | loss") + 1, 30s))
      << p.out() << p.err();
  const SteadyClock::time_point resumed = SteadyClock::now();
  WeftrunResult r = p.finish(120s);
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  const std::string stopped_pid = r.out.substr(r.out.find("stopping rank 2 (pid ") + 21);
  const std::string named =
      "rank 2 (pid " + stopped_pid.substr(0, stopped_pid.find(')')) + ") sent no heartbeat";
  int survivors_naming_it = 0;
  for (const std::string& line : lines_of(r.err))
    if (contains(line, "PeerLost") && contains(line, named)) ++survivors_naming_it;
  EXPECT_EQ(survivors_naming_it, 3) << r.err;
  EXPECT_TRUE(contains(r.err,
                       "weftrun: restart 1 of at most 3: generation 2 at 4 ranks (same "
                       "size); the last one ended because " +
                           named))
      << r.err;
  EXPECT_EQ(count_of(r.out, "step  400/400"), 1) << r.out;

  const double detection = seconds_between(stopped, detected);
  std::printf(
      "hung rank: SIGSTOP to 3 survivors failed with PeerLost %.2f s (heartbeat timeout "
      "%.1f s); to the new generation's first line %.2f s, to its first step %.2f s\n",
      detection, kHeartbeat, seconds_between(stopped, rejoined), seconds_between(stopped, resumed));
  RecordProperty("detection_ms", static_cast<int>(detection * 1000));
  RecordProperty("resume_ms", static_cast<int>(seconds_between(stopped, resumed) * 1000));
  // Silence counts from the last beat, up to one beat interval (timeout / 5) before the stop.
  EXPECT_GE(detection, kHeartbeat * 0.8 - 0.2);
  EXPECT_LT(detection, kHeartbeat + 2.0);
}

}  // namespace
}  // namespace weft::testing
