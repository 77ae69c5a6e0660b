#include "checkpoint/reshard.h"

#include <algorithm>

#include "runtime/error.h"

namespace weft::checkpoint {
namespace {

std::string shape_text(const std::vector<size_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Row-major strides of a box.
std::vector<size_t> strides(const std::vector<Interval>& box) {
  std::vector<size_t> s(box.size(), 1);
  for (size_t d = box.size(); d-- > 1;) s[d - 1] = s[d] * box[d].length;
  return s;
}

// The runs `saved` (stored at `offset` of shard `shard`) gives `need`, appended to `out`.
void add_runs(const Piece& saved, uint64_t offset, size_t shard, const Need& need,
              std::vector<CopyRun>& out) {
  const size_t dims = need.box.size();
  std::vector<Interval> common(dims);
  for (size_t d = 0; d < dims; d++) {
    const size_t lo = std::max(saved.box[d].start, need.box[d].start);
    const size_t hi =
        std::min(saved.box[d].start + saved.box[d].length, need.box[d].start + need.box[d].length);
    if (lo >= hi) return;
    common[d] = {lo, hi - lo};
  }
  const std::vector<size_t> saved_stride = strides(saved.box), need_stride = strides(need.box);
  const size_t row = common[dims - 1].length;
  // One pass per row of the intersection: `index` walks its leading dimensions.
  std::vector<size_t> index(dims, 0);
  while (true) {
    size_t fs = 0, fn = 0;  // flat positions of the row's first element in either box
    for (size_t d = 0; d < dims; d++) {
      const size_t g = common[d].start + index[d];
      fs += (g - saved.box[d].start) * saved_stride[d];
      fn += (g - need.box[d].start) * need_stride[d];
    }
    // Clip the row to both ranges: element k of the row is fs + k in the saved box, fn + k in
    // the needed one.
    const size_t k0 = std::max({size_t{0}, saved.begin > fs ? saved.begin - fs : 0,
                                need.begin > fn ? need.begin - fn : 0});
    const size_t k1 =
        std::min({row, saved.end > fs ? saved.end - fs : 0, need.end > fn ? need.end - fn : 0});
    if (k0 < k1) {
      CopyRun run{shard, offset + (fs + k0 - saved.begin) * sizeof(float), k1 - k0,
                  need.dst + (fn + k0 - need.begin)};
      CopyRun* last = out.empty() ? nullptr : &out.back();
      if (last && last->shard == shard &&
          last->file_offset + last->elements * sizeof(float) == run.file_offset &&
          last->dst + last->elements == run.dst)
        last->elements += run.elements;
      else
        out.push_back(run);
    }
    if (dims == 1) break;
    size_t d = dims - 1;  // the last dimension is the row itself
    while (d-- > 0) {
      if (++index[d] < common[d].length) break;
      index[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) break;
  }
}

}  // namespace

PieceIndex::PieceIndex(const std::vector<ShardReport>& shards) : shards_(shards) {
  for (size_t s = 0; s < shards.size(); s++)
    for (size_t p = 0; p < shards[s].pieces.size(); p++) {
      const Piece& piece = shards[s].pieces[p].piece;
      by_tensor_[{piece.tensor, piece.kind}].push_back({s, p});
    }
}

std::vector<CopyRun> PieceIndex::plan(const Need& need) const {
  const std::string what = std::string(kind_name(need.kind)) + " of " + need.tensor;
  auto it = by_tensor_.find({need.tensor, need.kind});
  if (it == by_tensor_.end()) throw Error(ErrorCode::Corrupt, "the checkpoint holds no " + what);
  std::vector<CopyRun> runs;
  for (auto [s, p] : it->second) {
    const StoredPiece& stored = shards_[s].pieces[p];
    if (stored.piece.global_shape != need.global_shape)
      throw Error(ErrorCode::InvalidArgument,
                  "the checkpoint's " + need.tensor + " is " +
                      shape_text(stored.piece.global_shape) + ", this model's " +
                      shape_text(need.global_shape) + ": a checkpoint of another model");
    add_runs(stored.piece, stored.offset, s, need, runs);
  }
  size_t covered = 0;
  for (const CopyRun& r : runs) covered += r.elements;
  if (covered != need.end - need.begin)
    throw Error(ErrorCode::Corrupt, "the checkpoint's pieces cover " + std::to_string(covered) +
                                        " of the " + std::to_string(need.end - need.begin) +
                                        " elements needed of the " + what);
  return runs;
}

}  // namespace weft::checkpoint
