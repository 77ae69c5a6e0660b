#pragma once
// A committed step's description, MANIFEST.json in its directory (ckpt/step-00000100/): the job's
// part (the layout it was saved under, the flags that define the model, every tensor's global
// shape, the step, the data position, the RNG state), which the saving job's rank 0 writes, and
// one report per rank: its shard file, size, xxHash64 of the whole file and of each block, and
// the pieces it holds with their byte offsets. The manifest carries the xxHash64 of its own
// text (without that field), so a torn or edited manifest is found like a torn shard.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/piece.h"

namespace weft::checkpoint {

namespace fs = std::filesystem;

inline constexpr const char* kFormat = "weft-checkpoint-1";
inline constexpr const char* kManifestFile = "MANIFEST.json";
inline constexpr const char* kLatestFile = "LATEST";

// "step-00000100", "rank-00003.safetensors".
std::string step_dir_name(int64_t step);
std::string shard_file_name(int rank);

// A piece and where its data is in the shard file (absolute byte offset, F32 elements).
struct StoredPiece {
  Piece piece;
  uint64_t offset = 0;
};

struct ShardReport {
  int rank = 0;
  std::string file;  // relative to the step's directory
  uint64_t bytes = 0;
  uint64_t xxh64 = 0;  // of the whole file
  uint64_t block_bytes = 0;
  std::vector<uint64_t> blocks;  // xxh64 of each block_bytes of the file (the last may be short)
  std::vector<StoredPiece> pieces;
};

nlohmann::json to_json(const ShardReport& r);
ShardReport shard_report_from_json(const nlohmann::json& j, const std::string& where);

struct Manifest {
  int64_t step = 0;
  nlohmann::json job;               // the job's part (see above), as rank 0 described it
  std::vector<ShardReport> shards;  // by rank
};

// MANIFEST.json's text, with its checksum.
std::string encode_manifest(const Manifest& m);
// Reads and verifies `dir`/step-.../MANIFEST.json. Error(Corrupt) naming the file when it is
// torn, edited or malformed; Error(Io) when it cannot be read.
Manifest read_manifest(const fs::path& dir, int64_t step);

}  // namespace weft::checkpoint
