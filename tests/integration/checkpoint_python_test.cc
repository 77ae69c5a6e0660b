// A checkpoint read without weft: Debian's python3 with numpy opens a shard as the safetensors
// file it is and finds a tensor equal to what weft's own reader gets, and
// tools/assemble_checkpoint.py puts the whole model together from any layout's shards: the
// tensors assembled from dp 2 x tp 2 (ZeRO-1) and tp 2 x pp 2 equal a one-rank run's.
#include <gtest/gtest.h>
#include <stdio.h>

#include <fstream>

#include "checkpoint/manifest.h"
#include "checkpoint/reshard.h"
#include "checkpoint/shard_reader.h"
#include "tests/integration/train_harness.h"

namespace weft::testing {
namespace {

// clang-format off
const Args kModel = {"--layers", "4", "--d-model", "32", "--heads", "4", "--seq", "16",
                     "--batch", "8", "--micro-batch", "2", "--steps", "3", "--ckpt-every", "3",
                     "--lr", "3e-3", "--warmup", "2", "--bucket-mb", "0.01", "--threads", "1"};
// clang-format on

// Runs `script` with /usr/bin/python3 (numpy must be there): its output and exit status.
std::pair<std::string, int> python(const std::string& script, const fs::path& dir) {
  const fs::path file = dir / "check.py";
  std::ofstream(file) << script;
  FILE* p = ::popen((std::string(WEFT_SYSTEM_PYTHON) + " " + file.string() + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  return {out, ::pclose(p)};
}

class CheckpointPython : public Train {
 protected:
  void save(int ranks, const std::string& name, const Args& layout) {
    Args flags = kModel;
    flags.insert(flags.end(), {"--ckpt-dir", (dir_ / name).string()});
    flags.insert(flags.end(), layout.begin(), layout.end());
    WeftrunResult r = train(ranks, flags, {}, {}, std::chrono::seconds(60));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
};

TEST_F(CheckpointPython, NumpyReadsAShardAsWeftDoes) {
  save(1, "one", {});
  // weft's reader: h1.fc.w, the MLP's [128, 32] weight, from the manifest's pieces.
  const checkpoint::Manifest m = checkpoint::read_manifest(dir_ / "one", 3);
  std::vector<float> weft(128 * 32);
  checkpoint::read_runs(dir_ / "one" / "step-00000003", m,
                        checkpoint::PieceIndex(m.shards).plan({"h1.fc.w",
                                                               checkpoint::PieceKind::param,
                                                               {128, 32},
                                                               {{0, 128}, {0, 32}},
                                                               0,
                                                               weft.size(),
                                                               weft.data()}));
  std::ofstream(dir_ / "weft.f32", std::ios::binary)
      .write(reinterpret_cast<const char*>(weft.data()), static_cast<long>(weft.size() * 4));
  auto [out, status] = python(R"(
import json, struct, numpy as np
path = ")" + (dir_ / "one/step-00000003/rank-00000.safetensors").string() +
                                  R"("
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    entry = header["h1.fc.w"]
    begin, end = entry["data_offsets"]
    f.seek(8 + n + begin)
    tensor = np.frombuffer(f.read(end - begin), dtype="<f4").reshape(entry["shape"])
piece = json.loads(header["__metadata__"]["h1.fc.w"])
assert entry["dtype"] == "F32" and entry["shape"] == [128, 32], entry
assert piece["global_shape"] == [128, 32] and piece["box"] == [[0, 128], [0, 32]], piece
weft = np.fromfile(")" + (dir_ / "weft.f32").string() +
                                  R"(", dtype="<f4").reshape(128, 32)
assert np.array_equal(tensor, weft), np.abs(tensor - weft).max()
print("numpy read h1.fc.w: std", tensor.std())
)",
                              dir_);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("numpy read h1.fc.w"), std::string::npos) << out;
}

TEST_F(CheckpointPython, AssembledModelEqualsOneRanksFromAnyLayout) {
  save(1, "one", {});
  save(4, "dp-tp", {"--dp", "2", "--tp", "2", "--zero1"});
  save(4, "tp-pp", {"--tp", "2", "--pp", "2"});
  for (const char* name : {"one", "dp-tp", "tp-pp"}) {
    const std::string cmd = std::string(WEFT_SYSTEM_PYTHON) + " " + WEFT_ASSEMBLE_SCRIPT + " " +
                            (dir_ / name).string() + " " + (dir_ / name).string() +
                            ".safetensors --moments > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  auto [out, status] = python(R"(
import json, struct, numpy as np
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__")
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"])
            for k, v in header.items()}
one = load(")" + (dir_ / "one.safetensors").string() +
                                  R"(")
assert len([k for k in one if "/" not in k]) == 2 + 4 * 12 + 2, sorted(one)
for other in ["dp-tp", "tp-pp"]:
    got = load(")" + dir_.string() +
                                  R"(/" + other + ".safetensors")
    assert sorted(got) == sorted(one), (other, sorted(set(got) ^ set(one)))
    for k in one:
        # Another layout sums in another order: equal to float rounding, which AdamW's
        # normalised steps amplify for tensors that start at zero (biases): a misplaced slice
        # would be off by the tensor's own size.
        scale = max(np.abs(one[k]).max(), 1e-30)
        err = np.abs(got[k] - one[k]).max() / scale
        assert err < 1e-3, (other, k, err)
print("assembled", len(one), "tensors alike")
)",
                              dir_);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("tensors alike"), std::string::npos) << out;
}

}  // namespace
}  // namespace weft::testing
