// A running job's coordinator under fire: strangers (no token, another job's token), a confused
// client that holds the job's token (a stale generation, a rank outside the world, a malformed
// key), and 300 random byte strings on its port, all while weft-train trains on 2 ranks beside
// them. Every request gets its error, and the job notices nothing: the losses of an undisturbed
// run, bit for bit, no rank lost, exit 0.
#include <grpcpp/grpcpp.h>

#include <regex>

#include "tests/integration/train_harness.h"
#include "tests/support/coordinator_client.h"

namespace weft::testing {
namespace {

using grpc::StatusCode;

const Args kModel = {"--layers", "1",    "--d-model", "32", "--heads",   "2",
                     "--seq",    "16",   "--batch",   "4",  "--steps",   "3000",
                     "--lr",     "1e-3", "--warmup",  "2",  "--threads", "1"};

// weftrun's arguments for a 2-rank weft-train whose rank 0 first prints its coordinator's address
// and the job's token (what any process of the job could read from its environment).
Args job(const std::string& log) {
  Args args = {"-n",
               "2",
               "--",
               "sh",
               "-c",
               "if [ \"$WEFT_RANK\" = 0 ]; then echo \"coordinator $WEFT_STORE_ADDR "
               "$WEFT_TOKEN\"; fi; exec \"$@\"",
               "sh",
               WEFT_TRAIN_PATH};
  args.insert(args.end(), kModel.begin(), kModel.end());
  args.insert(args.end(), {"--log-json", log});
  return args;
}

TEST_F(Train, ItsCoordinatorRefusesBadRequestsAndRandomBytesWhileTheJobTrainsUndisturbed) {
  WeftrunResult quiet = WeftrunProcess(job((dir_ / "quiet.json").string())).finish(120s);
  ASSERT_EQ(quiet.exit_code, 0) << quiet.out << quiet.err;

  WeftrunProcess p(job((dir_ / "beside.json").string()));
  ASSERT_TRUE(p.wait_for_stdout("step    1/3000", 1, 60s)) << p.out() << p.err();
  std::smatch m;
  const std::string out = p.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(coordinator 127\.0\.0\.1:(\d+) (\S+))")))
      << out;
  const int port = std::stoi(m[1]);
  const std::string token = m[2];

  RawCoordinatorClient raw(port);
  for (int round = 0; round < 20; ++round) {
    grpc::Status s = set(raw, caller("", 1), "a", "stranger");
    EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
    s = set(raw, caller("another-jobs-token", 1), "a", "stranger");
    EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
    s = set(raw, caller(token, 0), "a", "from a generation that is over");
    EXPECT_EQ(s.error_code(), StatusCode::ABORTED) << s.error_message();
    s = set(raw, caller(token, 1, 7), "a", "rank 7 of 2");
    EXPECT_EQ(s.error_code(), StatusCode::OUT_OF_RANGE) << s.error_message();
    s = set(raw, caller(token, 1), "", "no key");
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_TRUE(send_random_bytes(port, 15, static_cast<unsigned>(round)));
  }
  // The fire must have fallen while the job trained, or the test proved nothing.
  EXPECT_EQ(count_of(p.out(), "step 3000/3000"), 0) << "the job ended before the requests did";

  WeftrunResult r = p.finish(120s);
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "coordinator refused a request from ipv4:127.0.0.1:")) << r.err;
  EXPECT_FALSE(contains(r.err, "PeerLost")) << r.err;
  std::vector<double> undisturbed = losses("quiet.json"), beside = losses("beside.json");
  ASSERT_EQ(undisturbed.size(), 3000u);
  EXPECT_EQ(beside, undisturbed);
}

}  // namespace
}  // namespace weft::testing
