// weft-coordinator: a job's coordinator run alone, its ranks started by hand (as on several
// machines) with WEFT_STORE_ADDR and the job's token.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <regex>
#include <string>

#include "tests/integration/weftrun_harness.h"

namespace weft::testing {
namespace {

using namespace std::chrono_literals;

const std::string kToken = "weft-coordinator-test-token";

std::unique_ptr<WeftrunProcess> start_rank(int rank, const std::string& addr,
                                           const std::string& token) {
  return std::make_unique<WeftrunProcess>(
      Program{WEFTRUN_RANK_HELPER_PATH}, std::vector<std::string>{"allreduce"}, "",
      std::vector<std::string>{"RANK=" + std::to_string(rank), "WORLD_SIZE=2",
                               "LOCAL_RANK=" + std::to_string(rank), "LOCAL_WORLD_SIZE=2",
                               "WEFT_STORE_ADDR=" + addr, "WEFT_TOKEN=" + token,
                               "WEFT_BACKEND=tcp", "WEFT_TIMEOUT=20"});
}

TEST(WeftCoordinator, ServesRanksStartedByHandAndRefusesAnotherJobsToken) {
  WeftrunProcess coordinator(Program{WEFT_COORDINATOR_PATH},
                             {"--port", "0", "--heartbeat-timeout", "3"}, "",
                             {"WEFT_TOKEN=" + kToken});
  ASSERT_TRUE(coordinator.wait_for_stdout("listening on", 1, 20s)) << coordinator.out();
  std::smatch m;
  std::string out = coordinator.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(listening on (127\.0\.0\.1:\d+) )")))
      << out;
  const std::string addr = m[1];

  WeftrunResult stranger = start_rank(0, addr, "another-jobs-token")->finish(30s);
  EXPECT_NE(stranger.exit_code, 0);
  EXPECT_TRUE(contains(stranger.err, "refused this rank: wrong job token")) << stranger.err;

  auto rank0 = start_rank(0, addr, kToken);
  auto rank1 = start_rank(1, addr, kToken);
  WeftrunResult r0 = rank0->finish(60s), r1 = rank1->finish(60s);
  EXPECT_EQ(r0.exit_code, 0) << r0.out << r0.err;
  EXPECT_EQ(r1.exit_code, 0) << r1.out << r1.err;
  EXPECT_TRUE(contains(r0.out, "rank 0 allreduce 3 over tcp")) << r0.out;
  EXPECT_TRUE(contains(r1.out, "rank 1 allreduce 3 over tcp")) << r1.out;

  coordinator.send_signal(SIGTERM);
  WeftrunResult c = coordinator.finish(20s);
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_TRUE(contains(c.err, "wrong job token")) << c.err;  // the stranger, logged
}

TEST(WeftCoordinator, RefusesToListenBeyondLoopbackWithoutAToken) {
  WeftrunResult r = WeftrunProcess(Program{WEFT_COORDINATOR_PATH},
                                   {"--bind", "0.0.0.0", "--port", "0"}, "",
                                   {"WEFT_TOKEN=", "WEFT_INSECURE="})
                        .finish(20s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "WEFT_TOKEN")) << r.err;
}

}  // namespace
}  // namespace weft::testing
