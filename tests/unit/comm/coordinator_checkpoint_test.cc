// The coordinator as the job's checkpoint committer (CommitShard): a step is committed (manifest,
// then LATEST) once every rank has reported its shard, and never otherwise: a rank lost while
// the others wait, or a rank that could not write, leaves no manifest; requests without the
// token, from a non-member, or malformed change nothing.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>

#include "checkpoint/commit.h"
#include "checkpoint/shard_writer.h"
#include "comm/rendezvous/coordinator.h"
#include "proto/coordinator.grpc.pb.h"
#include "runtime/error.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace pb = weft::coordinator;
namespace ck = weft::checkpoint;

const std::string kToken = "coordinator-checkpoint-test-token";

class CoordinatorCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weft-coord-ckpt-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    coordinator_ = std::make_unique<Coordinator>("127.0.0.1", 0, kToken, CoordinatorOptions{0ms});
    for (int r = 0; r < 2; r++) {
      ranks_.push_back(
          CoordinatorStore::connect("127.0.0.1", coordinator_->port(), kToken, Clock::now() + 10s));
      ranks_.back()->join_as(r, 2);
    }
  }
  void TearDown() override {
    ranks_.clear();
    coordinator_.reset();
    fs::remove_all(dir_);
  }
  // Rank `rank`'s shard of `step`, written, and its report.
  std::string shard(int rank, int64_t step) {
    return ck::to_json(ck::write_shard(dir_ / ck::step_dir_name(step), rank, step,
                                       {{ck::Piece::whole("b" + std::to_string(rank),
                                                          ck::PieceKind::param, {2}),
                                         values_}}))
        .dump();
  }
  // Rank `rank` reports on a thread of its own.
  std::future<void> report(int rank, int64_t step, const std::string& report) {
    return std::async(std::launch::async, [=, this] {
      ranks_[static_cast<size_t>(rank)]->commit_shard(dir_.string(), step, 0,
                                                      rank == 0 ? R"({"layout":{"dp":2}})" : "",
                                                      report, Clock::now() + 10s);
    });
  }
  bool committed(int64_t step) const {
    return fs::exists(dir_ / ck::step_dir_name(step) / ck::kManifestFile);
  }

  fs::path dir_;
  std::unique_ptr<Coordinator> coordinator_;
  std::vector<std::unique_ptr<CoordinatorStore>> ranks_;
  const float values_[2] = {1, 2};
};

TEST_F(CoordinatorCheckpoint, CommitsOnceEveryRankReported) {
  auto first = report(0, 7, shard(0, 7));
  EXPECT_EQ(first.wait_for(300ms), std::future_status::timeout);  // waits for rank 1
  EXPECT_FALSE(committed(7));
  auto second = report(1, 7, shard(1, 7));
  first.get();
  second.get();
  EXPECT_TRUE(committed(7));
  EXPECT_EQ(ck::latest_step(dir_), 7);
  const ck::Manifest m = ck::read_manifest(dir_, 7);
  EXPECT_EQ(m.job["layout"]["dp"], 2);
  ASSERT_EQ(m.shards.size(), 2u);
  EXPECT_EQ(m.shards[1].pieces[0].piece.tensor, "b1");
}

TEST_F(CoordinatorCheckpoint, ARankLostBeforeReportingLeavesNoManifest) {
  auto first = report(0, 4, shard(0, 4));
  std::this_thread::sleep_for(200ms);
  coordinator_->post_rank_lost("rank 1 (pid 99) died while writing its shard");
  try {
    first.get();
    FAIL() << "rank 0's commit returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PeerLost);
    EXPECT_NE(std::string(e.what()).find("rank 1 (pid 99) died"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(committed(4));
  EXPECT_EQ(ck::latest_step(dir_), std::nullopt);
}

TEST_F(CoordinatorCheckpoint, ARankThatCouldNotWriteFailsTheStepForAll) {
  auto first = report(0, 5, shard(0, 5));
  auto second = report(1, 5, R"({"error":"rank 1 could not write its shard: disk full"})");
  for (auto* f : {&first, &second}) {
    try {
      f->get();
      FAIL() << "a step without rank 1's shard committed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Io);
      EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(committed(5));
}

TEST_F(CoordinatorCheckpoint, BadRequestsChangeNothing) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = pb::Coordinator::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(coordinator_->port()),
                                grpc::InsecureChannelCredentials(), args));
  const std::string good = shard(0, 9);
  auto send = [&](const std::string& token, int rank, const std::string& dir,
                  const std::string& body) {
    pb::CommitShardRequest req;
    req.mutable_caller()->set_token(token);
    req.mutable_caller()->set_generation(coordinator_->generation());
    req.mutable_caller()->set_rank(rank);
    req.set_dir(dir);
    req.set_step(9);
    req.set_report(body);
    req.set_job("{}");
    req.set_timeout_ms(100);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    pb::CommitShardReply reply;
    return stub->CommitShard(&ctx, req, &reply).error_code();
  };
  EXPECT_EQ(send("", 0, dir_.string(), good), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(send("another job", 0, dir_.string(), good), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(send(kToken, -1, dir_.string(), good), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(send(kToken, 5, dir_.string(), good), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(send(kToken, 0, "relative/dir", good), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(send(kToken, 0, dir_.string(), "not json {"), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(committed(9));
  // The coordinator still commits for the job's ranks.
  auto first = report(0, 9, good);
  report(1, 9, shard(1, 9)).get();
  first.get();
  EXPECT_TRUE(committed(9));
}

}  // namespace
}  // namespace weft::comm
