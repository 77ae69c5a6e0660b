// The checkpoint format on real files: safetensors shards and their headers, the commit
// (manifest, LATEST, pruning; nothing committed without every report), torn and corrupted files
// found by checksum and named, and resharding: any box and range of a tensor read back from
// pieces saved under another cut equals the same elements of the global tensor.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "checkpoint/checksum.h"
#include "checkpoint/commit.h"
#include "checkpoint/file_io.h"
#include "checkpoint/reshard.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/shard_reader.h"
#include "checkpoint/shard_writer.h"
#include "runtime/error.h"

namespace weft::checkpoint {
namespace {

class CheckpointFormat : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weft-ckpt-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// A global [rows, cols] tensor whose element (r, c) is r * 100 + c.
std::vector<float> global_tensor(size_t rows, size_t cols) {
  std::vector<float> g(rows * cols);
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < cols; c++) g[r * cols + c] = static_cast<float>(r * 100 + c);
  return g;
}

// The box's elements of `g` (a [rows, cols] tensor), row-major.
std::vector<float> box_of(const std::vector<float>& g, size_t cols, Interval r, Interval c) {
  std::vector<float> out;
  for (size_t i = r.start; i < r.start + r.length; i++)
    for (size_t j = c.start; j < c.start + c.length; j++) out.push_back(g[i * cols + j]);
  return out;
}

Piece slice(const std::string& name, PieceKind kind, std::vector<size_t> shape, Interval r,
            Interval c, size_t begin, size_t end) {
  Piece p;
  p.tensor = name;
  p.kind = kind;
  p.global_shape = std::move(shape);
  p.box = {r, c};
  p.begin = begin;
  p.end = end;
  return p;
}

TEST_F(CheckpointFormat, ShardIsASafetensorsFileWithPiecesInItsMetadata) {
  const std::vector<float> g = global_tensor(4, 3);
  std::vector<float> half = box_of(g, 3, {2, 2}, {0, 3});
  std::vector<PieceData> pieces = {
      {slice("w", PieceKind::param, {4, 3}, {2, 2}, {0, 3}, 0, 6), half.data()},
      {slice("w", PieceKind::adam_m, {4, 3}, {2, 2}, {0, 3}, 1, 4), half.data() + 1}};
  ShardReport r = write_shard(dir_ / step_dir_name(7), 3, 7, pieces, 64);
  EXPECT_EQ(r.file, "rank-00003.safetensors");
  const fs::path file = dir_ / "step-00000007" / r.file;
  const std::string bytes = read_whole_file(file);
  ASSERT_EQ(bytes.size(), r.bytes);
  EXPECT_EQ(xxh64(bytes.data(), bytes.size()), r.xxh64);
  EXPECT_EQ(r.blocks.size(), (r.bytes + 63) / 64);
  SafetensorsHeader h = decode_safetensors_header(bytes, file.string());
  EXPECT_EQ(h.data_start % 8, 0u);
  ASSERT_EQ(h.entries.size(), 2u);
  EXPECT_EQ(h.entries[0].name, "w");
  EXPECT_EQ(h.entries[0].shape, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(h.entries[1].name, "adam_m/w[1:4]");
  EXPECT_EQ(h.entries[1].shape, (std::vector<size_t>{3}));
  Piece back = piece_from_json(nlohmann::json::parse(h.metadata.at("adam_m/w[1:4]")), "test");
  EXPECT_EQ(back.box, pieces[1].piece.box);
  EXPECT_EQ(back.begin, 1u);
  std::vector<float> data(3);
  std::memcpy(data.data(), bytes.data() + h.data_start + h.entries[1].begin, 12);
  EXPECT_EQ(data, (std::vector<float>{201, 202, 300}));
  EXPECT_EQ(r.pieces[1].offset, h.data_start + h.entries[1].begin);
}

TEST_F(CheckpointFormat, CommitWritesManifestThenLatestAndRefusesAMissingReport) {
  std::vector<float> a = {1, 2, 3, 4};
  auto save = [&](int64_t step, int rank) {
    return write_shard(
        dir_ / step_dir_name(step), rank, step,
        {{Piece::whole("b" + std::to_string(rank), PieceKind::param, {4}), a.data()}});
  };
  nlohmann::json job = {{"layout", {{"dp", 2}}}};
  commit_step(dir_, 5, 2, job, {save(5, 1), save(5, 0)}, 0);
  EXPECT_EQ(latest_step(dir_), 5);
  Manifest m = read_manifest(dir_, 5);
  EXPECT_EQ(m.step, 5);
  EXPECT_EQ(m.job["layout"]["dp"], 2);
  ASSERT_EQ(m.shards.size(), 2u);
  EXPECT_EQ(m.shards[1].pieces[0].piece.tensor, "b1");

  // Step 10: rank 1 never reported (it died while writing): no manifest, LATEST stays.
  ShardReport only = save(10, 0);
  EXPECT_THROW(commit_step(dir_, 10, 2, job, {only, only}, 0), Error);
  try {
    commit_step(dir_, 10, 2, job, {only}, 0);
    FAIL() << "committed without rank 1's report";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no report from rank 1"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "step-00000010" / kManifestFile));
  EXPECT_EQ(latest_step(dir_), 5);
  EXPECT_EQ(resume_candidates(dir_), (std::vector<int64_t>{5}));
}

TEST_F(CheckpointFormat, KeepPrunesOlderStepsAndUncommittedLeftovers) {
  std::vector<float> a = {1};
  for (int64_t step : {1, 2, 3, 4}) {
    ShardReport r = write_shard(dir_ / step_dir_name(step), 0, step,
                                {{Piece::whole("x", PieceKind::param, {1}), a.data()}});
    if (step == 2) continue;  // written, never committed
    commit_step(dir_, step, 1, {}, {r}, 2);
  }
  EXPECT_EQ(committed_steps(dir_), (std::vector<int64_t>{4, 3}));
  EXPECT_FALSE(fs::exists(dir_ / "step-00000002"));
  EXPECT_EQ(resume_candidates(dir_), (std::vector<int64_t>{4, 3}));
}

TEST_F(CheckpointFormat, EditedOrTornManifestIsNamed) {
  std::vector<float> a = {1, 2};
  commit_step(dir_, 3, 1, {},
              {write_shard(dir_ / step_dir_name(3), 0, 3,
                           {{Piece::whole("x", PieceKind::param, {2}), a.data()}})},
              0);
  const fs::path path = dir_ / "step-00000003" / kManifestFile;
  std::string text = read_whole_file(path);
  std::string edited = text;
  edited.replace(edited.find("\"step\": 3"), 9, "\"step\": 4");
  write_file_atomically(path, edited);
  for (const std::string& bad : {edited, text.substr(0, text.size() / 2)}) {
    write_file_atomically(path, bad);
    try {
      read_manifest(dir_, 3);
      FAIL() << "a bad manifest was read";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Corrupt);
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  }
}

// Saved: a [6, 4] tensor cut in two along rows (tp 2 on dim 0); its moment saved as four
// ZeRO-1-style ranges of the whole tensor. Loaded: column slices (tp 2 on dim 1) and odd ranges
// of them, as another layout would need.
TEST_F(CheckpointFormat, AnyBoxAndRangeReadsBackAcrossCuts) {
  const size_t R = 6, C = 4;
  const std::vector<float> g = global_tensor(R, C);
  std::vector<float> top = box_of(g, C, {0, 3}, {0, 4}), bottom = box_of(g, C, {3, 3}, {0, 4});
  auto p = [&](PieceKind k, Interval r, size_t b, size_t e) {
    return slice("w", k, {R, C}, r, {0, C}, b, e);
  };
  ShardReport r0 = write_shard(dir_ / step_dir_name(1), 0, 1,
                               {{p(PieceKind::param, {0, 3}, 0, 12), top.data()},
                                {p(PieceKind::adam_m, {0, 6}, 0, 5), g.data()},
                                {p(PieceKind::adam_m, {0, 6}, 5, 11), g.data() + 5}},
                               32);
  ShardReport r1 = write_shard(dir_ / step_dir_name(1), 1, 1,
                               {{p(PieceKind::param, {3, 3}, 0, 12), bottom.data()},
                                {p(PieceKind::adam_m, {0, 6}, 11, 19), g.data() + 11},
                                {p(PieceKind::adam_m, {0, 6}, 19, 24), g.data() + 19}},
                               32);
  commit_step(dir_, 1, 2, {}, {r0, r1}, 0);
  const Manifest m = read_manifest(dir_, 1);
  const PieceIndex index(m.shards);
  for (PieceKind kind : {PieceKind::param, PieceKind::adam_m})
    for (Interval cols : {Interval{0, 2}, Interval{2, 2}, Interval{1, 3}})
      for (auto [b, e] : {std::pair<size_t, size_t>{0, 12}, {3, 7}, {5, 6}}) {
        const std::vector<float> box = box_of(g, C, {0, R}, cols);
        if (e > box.size()) continue;
        std::vector<float> got(e - b, -1);
        Need need{"w", kind, {R, C}, {{0, R}, cols}, b, e, got.data()};
        read_runs(dir_ / "step-00000001", m, index.plan(need));
        EXPECT_EQ(got, std::vector<float>(box.begin() + b, box.begin() + e))
            << kind_name(kind) << " cols " << cols.start << "+" << cols.length << " [" << b << ","
            << e << ")";
      }
  // The same cut reads each piece whole, in one run.
  std::vector<float> got(12);
  EXPECT_EQ(index.plan({"w", PieceKind::param, {R, C}, {{3, 3}, {0, C}}, 0, 12, got.data()}).size(),
            1u);
  // Another model's tensor is refused, naming both shapes.
  EXPECT_THROW(index.plan({"w", PieceKind::param, {R, 8}, {{0, R}, {0, 8}}, 0, 48, got.data()}),
               Error);
}

TEST_F(CheckpointFormat, CorruptedOrTruncatedShardIsNamed) {
  std::vector<float> a(1000);
  std::iota(a.begin(), a.end(), 0.0f);
  ShardReport r = write_shard(dir_ / step_dir_name(2), 0, 2,
                              {{Piece::whole("x", PieceKind::param, {1000}), a.data()}}, 256);
  commit_step(dir_, 2, 1, {}, {r}, 0);
  const Manifest m = read_manifest(dir_, 2);
  const fs::path file = dir_ / "step-00000002" / r.file;
  std::string bytes = read_whole_file(file);
  auto load = [&] {
    std::vector<float> got(10);
    read_runs(dir_ / "step-00000002", m,
              PieceIndex(m.shards).plan(
                  {"x", PieceKind::param, {1000}, {{0, 1000}}, 500, 510, got.data()}));
    return got;
  };
  EXPECT_EQ(load()[0], 500.0f);
  // A flipped byte far from the range read goes unseen (its block is not read)...
  std::string flipped = bytes;
  flipped[bytes.size() - 3] ^= 1;
  write_file_atomically(file, flipped);
  EXPECT_EQ(load()[0], 500.0f);
  // ...one inside a block that is read is found.
  flipped = bytes;
  flipped[r.pieces[0].offset + 502 * 4] ^= 1;
  write_file_atomically(file, flipped);
  for (const std::string& bad : {flipped, bytes.substr(0, bytes.size() - 100)}) {
    write_file_atomically(file, bad);
    try {
      load();
      FAIL() << "a bad shard was read";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Corrupt);
      EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace weft::checkpoint
