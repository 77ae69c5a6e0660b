#pragma once
// Resharding, as pure planning: which byte ranges of which shard files fill what a rank of the
// loading layout needs. A need is a piece in the loading layout's terms (a box of a global
// tensor, and a range of the box's elements); every saved piece of the same tensor and kind that
// overlaps it gives copy runs, row by row of the boxes' intersection, each clipped to both
// ranges; runs contiguous in the file and in memory are merged, so a layout loading what it
// saved reads each piece in one run.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/manifest.h"
#include "checkpoint/piece.h"

namespace weft::checkpoint {

// Elements [begin, end) of `box` (row-major) of global tensor `tensor`'s `kind`, for dst[0 ..).
struct Need {
  std::string tensor;
  PieceKind kind = PieceKind::param;
  std::vector<size_t> global_shape;
  std::vector<Interval> box;
  size_t begin = 0, end = 0;
  float* dst = nullptr;
};

struct CopyRun {
  size_t shard = 0;          // index into the manifest's shards
  uint64_t file_offset = 0;  // bytes
  size_t elements = 0;
  float* dst = nullptr;
};

// The saved pieces by (tensor, kind).
class PieceIndex {
 public:
  explicit PieceIndex(const std::vector<ShardReport>& shards);
  // Error(Corrupt) naming the tensor when the pieces do not cover the need (a checkpoint that
  // lacks part of a tensor), Error(InvalidArgument) when the tensor's global shape differs (a
  // checkpoint of another model).
  std::vector<CopyRun> plan(const Need& need) const;

 private:
  const std::vector<ShardReport>& shards_;
  std::map<std::pair<std::string, PieceKind>, std::vector<std::pair<size_t, size_t>>> by_tensor_;
};

}  // namespace weft::checkpoint
