// A hung rank: one of 4 ranks stops (SIGSTOP) in the middle of training. Its process lives and
// its connections stay open, so neither weftrun nor the transports see it go; the coordinator's
// heartbeat deadline does, and the others fail with PeerLost naming it within the timeout.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <regex>
#include <string>

#include "tests/integration/weftrun_harness.h"

namespace weft::testing {
namespace {

using namespace std::chrono_literals;

constexpr double kHeartbeatTimeout = 2.0;  // seconds, weftrun --heartbeat-timeout

class WeftrunHeartbeat : public ::testing::TestWithParam<std::string> {};

TEST_P(WeftrunHeartbeat, ARankStoppedMidTrainingIsLostWithinTheHeartbeatTimeout) {
  WeftrunProcess job({"-n", "4", "--backend", GetParam(), "--grace", "1", "--timeout", "60",
                      "--heartbeat-timeout", std::to_string(kHeartbeatTimeout), "--",
                      WEFTRUN_RANK_HELPER_PATH, "stopped-mid-training", "2"});
  bool stopped = job.wait_for_stdout("stops at", 1, 60s);
  std::smatch m;
  std::string out = job.out();
  std::regex stop_line(R"(rank 2 \(pid (\d+)\) stops at (\d+) ms)");
  pid_t pid = 0;
  long long stopped_at = 0;
  if (stopped && std::regex_search(out, m, stop_line)) {
    pid = std::stoi(m[1]);
    stopped_at = std::stoll(m[2]);
  }
  WeftrunResult r = job.finish(60s);
  // Whatever happened, the stopped rank must not be left behind.
  if (pid > 0 && process_alive(pid)) {
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGKILL);
    ADD_FAILURE() << "rank 2 (pid " << pid << ") outlived weftrun";
  }
  ASSERT_TRUE(stopped) << r.out << r.err;
  ASSERT_GT(pid, 0) << r.out;
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  EXPECT_NE(r.exit_code, 0);

  std::regex failed(R"(rank (\d) failed at (\d+) ms in step \d+: PeerLost: ([^\n]*))");
  int survivors = 0;
  long long last = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), failed);
       it != std::sregex_iterator(); ++it) {
    ++survivors;
    last = std::max(last, std::stoll((*it)[2]));
    EXPECT_TRUE(contains((*it)[3], "rank 2 (pid " + std::to_string(pid) + ") sent no heartbeat"))
        << (*it)[0];
  }
  EXPECT_EQ(survivors, 3) << r.out << r.err;
  double detected = (last - stopped_at) / 1000.0;
  std::printf("backend %s: from SIGSTOP to all 3 survivors failed with PeerLost: %.2f s "
              "(heartbeat timeout %.1f s)\n",
              GetParam().c_str(), detected, kHeartbeatTimeout);
  RecordProperty("detection_ms", static_cast<int>(last - stopped_at));
  EXPECT_GE(detected, kHeartbeatTimeout - 0.2);
  EXPECT_LT(detected, kHeartbeatTimeout + 1.5);
}

INSTANTIATE_TEST_SUITE_P(Backends, WeftrunHeartbeat, ::testing::Values("shm", "tcp"));

}  // namespace
}  // namespace weft::testing
