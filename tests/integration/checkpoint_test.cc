// weft-train's checkpoints end to end, under weftrun (its coordinator commits) and mpirun
// (rank 0 commits): a resumed run continues with exactly the losses of a run never stopped;
// a checkpoint saved under dp 4 loads under dp 2 x tp 2 and tp 2 x pp 2 and continues with the
// saving layout's losses; a corrupted shard of the newest step is named and the load falls back
// to the step before (which saves the step again, over the torn one), while a shard that is not
// there at all fails the resume naming it; a rank killed in the middle of writing its shard, or
// one that cannot write it, leaves the step without a manifest and LATEST where it was; and a
// checkpoint of another model is refused naming the flag.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "tests/integration/train_harness.h"

namespace weft::testing {
namespace {

// Small enough for 4 oversubscribed ranks on 2 cores; heads, layers and vocabulary cut by 2.
// clang-format off
const Args kModel = {"--layers", "4", "--d-model", "32", "--heads", "4", "--seq", "16",
                     "--batch", "8", "--micro-batch", "2", "--steps", "8",
                     "--lr", "3e-3", "--warmup", "2", "--bucket-mb", "0.01", "--threads", "1"};
// clang-format on
constexpr std::chrono::seconds kRunTimeout{90};

Args with(Args a, const Args& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Checkpoint : public Train {
 protected:
  // Runs 4 ranks of kModel plus `flags`, logging to `log`; the job must succeed.
  std::vector<double> run(const std::string& log, const Args& flags, std::string* out = nullptr) {
    WeftrunResult r = train(4, with(with(kModel, flags), {"--log-json", (dir_ / log).string()}), {},
                            {}, kRunTimeout);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    if (out) *out = r.out + r.err;
    return losses(log);
  }
  std::string ckpt() const { return (dir_ / "ckpt").string(); }
  // The losses of steps first..last (from 1) of a full run's log.
  static std::vector<double> steps(const std::vector<double>& all, size_t first, size_t last) {
    if (all.size() < last) return {};
    return std::vector<double>(all.begin() + static_cast<long>(first - 1),
                               all.begin() + static_cast<long>(last));
  }
};

TEST_F(Checkpoint, ResumedRunContinuesWithTheExactLosses) {
  for (const Args& layout : {Args{"--dp", "4"}, Args{"--dp", "2", "--tp", "2", "--zero1"}}) {
    SCOPED_TRACE(::testing::PrintToString(layout));
    fs::remove_all(ckpt());
    const std::vector<double> whole = run("whole.json", layout);
    ASSERT_EQ(whole.size(), 8u);
    // Saving after step 5 changes nothing in the run itself.
    std::string out;
    EXPECT_EQ(run("saving.json", with(layout, {"--ckpt-dir", ckpt(), "--ckpt-every", "5"}), &out),
              whole);
    EXPECT_NE(out.find("checkpoint " + ckpt() + "/step-00000005 committed"), std::string::npos)
        << out;
    EXPECT_NE(out.find("hidden behind training"), std::string::npos) << out;
    const std::vector<double> resumed =
        run("resumed.json", with(layout, {"--ckpt-dir", ckpt(), "--resume"}), &out);
    EXPECT_NE(out.find("resumed from " + ckpt() + "/step-00000005"), std::string::npos) << out;
    EXPECT_EQ(resumed, steps(whole, 6, 8));  // bit for bit
    fs::remove(dir_ / "whole.json");
    fs::remove(dir_ / "saving.json");
    fs::remove(dir_ / "resumed.json");
  }
}

TEST_F(Checkpoint, SavedUnderDp4LoadsUnderOtherLayouts) {
  const std::vector<double> whole = run("whole.json", {"--dp", "4"});
  ASSERT_EQ(whole.size(), 8u);
  run("saving.json", {"--dp", "4", "--ckpt-dir", ckpt(), "--ckpt-every", "5"});
  const std::vector<double> expected = steps(whole, 6, 8);
  int n = 0;
  for (const Args& layout : {Args{"--dp", "2", "--tp", "2"}, Args{"--tp", "2", "--pp", "2"},
                             Args{"--dp", "2", "--pp", "2", "--zero1"}}) {
    const std::string log = "resumed" + std::to_string(n++) + ".json";
    std::string out;
    const std::vector<double> resumed =
        run(log, with(layout, {"--ckpt-dir", ckpt(), "--resume"}), &out);
    ASSERT_EQ(resumed.size(), expected.size()) << ::testing::PrintToString(layout) << out;
    for (size_t i = 0; i < expected.size(); i++)
      EXPECT_NEAR(resumed[i], expected[i], 1e-5 * std::abs(expected[i]))
          << "step " << 6 + i << " under " << ::testing::PrintToString(layout);
  }
}

TEST_F(Checkpoint, CorruptedNewestShardFallsBackToThePreviousStep) {
  const Args layout = {"--dp", "4", "--zero1"};  // every rank writes moments: rank 1's are read
  const std::vector<double> whole = run("whole.json", layout);
  run("saving.json", with(layout, {"--ckpt-dir", ckpt(), "--ckpt-every", "3"}));
  const fs::path shard = dir_ / "ckpt" / "step-00000006" / "rank-00001.safetensors";
  std::string bytes = read_file(shard);
  ASSERT_GT(bytes.size(), 1000u);
  bytes[bytes.size() - 100] ^= 0x40;  // in its last moment's data
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  std::string out;
  const std::vector<double> resumed =
      run("resumed.json", with(layout, {"--ckpt-dir", ckpt(), "--resume"}), &out);
  EXPECT_NE(out.find(shard.string()), std::string::npos) << out;
  EXPECT_NE(out.find("do not match their checksum"), std::string::npos) << out;
  EXPECT_NE(out.find("falling back to step 3"), std::string::npos) << out;
  EXPECT_NE(out.find("resumed from " + ckpt() + "/step-00000003"), std::string::npos) << out;
  EXPECT_EQ(resumed, steps(whole, 4, 8));

  // A torn manifest of the newest step is named too.
  const fs::path manifest = dir_ / "ckpt" / "step-00000006" / "MANIFEST.json";
  const std::string text = read_file(manifest);
  std::ofstream(manifest, std::ios::binary | std::ios::trunc) << text.substr(0, text.size() / 2);
  run("resumed2.json", with(layout, {"--ckpt-dir", ckpt(), "--resume"}), &out);
  EXPECT_NE(out.find(manifest.string()), std::string::npos) << out;
  EXPECT_NE(out.find("falling back to step 3"), std::string::npos) << out;

  // Resumed from step 3, the job saves step 6 again, over the torn one; it loads.
  run("again.json", with(layout, {"--ckpt-dir", ckpt(), "--resume", "--ckpt-every", "3"}), &out);
  EXPECT_NE(out.find("step-00000006 committed"), std::string::npos) << out;
  EXPECT_EQ(run("resumed3.json", with(layout, {"--ckpt-dir", ckpt(), "--resume"}), &out),
            steps(whole, 7, 8));
}

TEST_F(Checkpoint, AMissingShardLeavesNoManifestAndLatestWhereItWas) {
  // Rank 2 cannot write its shard of step 6 (a directory is in its way): no report, no commit.
  fs::create_directories(dir_ / "ckpt" / "step-00000006" / "rank-00002.safetensors");
  std::string out;
  const std::vector<double> all =
      run("saving.json", {"--dp", "4", "--zero1", "--ckpt-dir", ckpt(), "--ckpt-every", "3"}, &out);
  EXPECT_EQ(all.size(), 8u);  // training went on
  EXPECT_NE(out.find("rank 2 could not write its shard"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "step-00000006" / "MANIFEST.json"));
  EXPECT_TRUE(fs::exists(dir_ / "ckpt" / "step-00000003" / "MANIFEST.json"));
  EXPECT_EQ(read_file(dir_ / "ckpt" / "LATEST"), "step-00000003\n");
}

// A committed step's shard that is not there (a --ckpt-dir the nodes of a job do not share) is not
// a torn write: the ranks fail naming it, instead of falling back step by step to step 1. Under
// ZeRO-1 rank 2's shard holds the moments only rank 2 reads again: it finds the file missing, and
// every other rank stops with it, naming it.
TEST_F(Checkpoint, AShardThatIsNotThereFailsTheResumeNamingIt) {
  run("saving.json", {"--dp", "4", "--zero1", "--ckpt-dir", ckpt(), "--ckpt-every", "3"});
  const fs::path shard = dir_ / "ckpt" / "step-00000006" / "rank-00002.safetensors";
  ASSERT_TRUE(fs::remove(shard));
  WeftrunResult r = train(4, with(kModel, {"--dp", "4", "--zero1", "--ckpt-dir", ckpt(), "--resume"}),
                          {}, {}, kRunTimeout);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  for (int rank : {0, 1, 3})
    EXPECT_NE(r.err.find("[rank " + std::to_string(rank) +
                         "] weft-train: Unavailable: rank 2 cannot find a shard of committed step 6"),
              std::string::npos)
        << r.err;
  EXPECT_NE(r.err.find("cannot find " + shard.string() +
                       ", rank 2's shard of committed step 6: across machines --ckpt-dir must be "
                       "one file system every node shares"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("falling back"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("falling back"), std::string::npos) << r.err;
}

TEST_F(Checkpoint, ARankKilledInTheMiddleOfAWriteLeavesNoManifest) {
  // Rank 1's shard of step 6 is a FIFO: its writer blocks on it until the script reads the
  // first 4 KiB, the rank is then mid-write, and the script kills it with SIGKILL.
  const std::string shard = ckpt() + "/step-00000006/rank-00001.safetensors";
  const std::string script = R"sh(if [ "$WEFT_RANK" != 1 ]; then exec "$@"; fi
mkdir -p "$(dirname "$SHARD")" && mkfifo "$SHARD"
"$@" & pid=$!
exec 3<"$SHARD"
dd bs=4096 count=1 <&3 >/dev/null 2>&1
kill -9 $pid; wait $pid; exit 137)sh";
  Args args = {"-n", "4", "--", "sh", "-c", script, "sh", WEFT_TRAIN_PATH};
  args =
      with(with(args, kModel), {"--dp", "4", "--zero1", "--ckpt-dir", ckpt(), "--ckpt-every", "3"});
  WeftrunResult r = WeftrunProcess(args, "", {"SHARD=" + shard}).finish(kRunTimeout);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("rank 1 exited with code 137"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "ckpt" / "step-00000003" / "MANIFEST.json"));
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "step-00000006" / "MANIFEST.json"));
  EXPECT_EQ(read_file(dir_ / "ckpt" / "LATEST"), "step-00000003\n");
}

TEST_F(Checkpoint, AnotherModelIsRefusedNamingTheFlag) {
  run("saving.json", {"--ckpt-dir", ckpt(), "--ckpt-every", "4"});
  Args other = kModel;
  other[3] = "64";  // --d-model
  WeftrunResult r = train(4, with(other, {"--ckpt-dir", ckpt(), "--resume"}), {}, {}, kRunTimeout);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--d-model 32, this run has --d-model 64"), std::string::npos) << r.err;
}

#ifdef WEFT_MPIEXEC
// mpirun with MPI's own collectives has no coordinator: rank 0 commits, and a resume under
// mpirun reads what weftrun's job saved (and the other way round).
TEST_F(Checkpoint, ResumesUnderMpirunWithoutACoordinator) {
  const std::vector<double> whole = run("whole.json", {"--dp", "4"});
  const Args env = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                    "OMPI_MCA_btl_vader_single_copy_mechanism=none", "OMPI_MCA_btl=self,vader",
                    "OMPI_MCA_pml=ob1"};
  auto mpirun = [&](const Args& flags, const std::string& log) {
    Args args = {"--oversubscribe", "-n", "2", WEFT_TRAIN_PATH, "--backend", "mpi"};
    args = with(with(with(args, kModel), flags), {"--log-json", (dir_ / log).string()});
    WeftrunProcess p(Program{WEFT_MPIEXEC}, args, "", env);
    WeftrunResult r = p.finish(kRunTimeout);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r.out + r.err;
  };
  std::string out = mpirun({"--ckpt-dir", ckpt(), "--ckpt-every", "3"}, "mpi.json");
  EXPECT_NE(out.find("step-00000006 committed"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir_ / "ckpt" / "step-00000006" / "MANIFEST.json"));
  // Saved by 2 ranks under mpirun, resumed by 4 under weftrun.
  const std::vector<double> resumed = run("resumed.json", {"--ckpt-dir", ckpt(), "--resume"});
  const std::vector<double> expected = steps(whole, 7, 8);
  ASSERT_EQ(resumed.size(), expected.size());
  for (size_t i = 0; i < expected.size(); i++)
    EXPECT_NEAR(resumed[i], expected[i], 1e-5 * std::abs(expected[i]));
}
#endif

}  // namespace
}  // namespace weft::testing
