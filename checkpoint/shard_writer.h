#pragma once
// Writing one rank's shard: its pieces, in the order given, into a safetensors file in the step's
// directory, with the xxHash64 of the whole file and of each block computed on the way; the
// file is fsynced before the report that describes it is returned.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "checkpoint/manifest.h"
#include "checkpoint/piece.h"

namespace weft::checkpoint {

inline constexpr uint64_t kBlockBytes = 1u << 20;

// A piece and its elements (f32, piece.elements() of them, contiguous).
struct PieceData {
  Piece piece;
  const float* data = nullptr;
};

// Writes `step_dir`/rank-XXXXX.safetensors (creating `step_dir`). Error(Io) naming the file.
ShardReport write_shard(const fs::path& step_dir, int rank, int64_t step,
                        const std::vector<PieceData>& pieces, uint64_t block_bytes = kBlockBytes);

}  // namespace weft::checkpoint
