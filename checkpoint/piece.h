#pragma once
// A piece: the part of one global tensor (a parameter, or one of AdamW's moments of it) that one
// shard file holds. Its box is a per-dimension [start, length) of the global shape (a
// tensor-parallel slice, or the whole tensor); its range, a flattened [begin, end) of the box's
// elements in row-major order, is the whole box except for ZeRO-1 moments, whose owner holds a
// range that may cut the tensor mid-way. Pieces of one kind never overlap, and together they
// cover every global tensor: that is what lets any layout load a checkpoint written by another.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace weft::checkpoint {

enum class PieceKind { param, adam_m, adam_v };
const char* kind_name(PieceKind k);  // "param", "adam_m", "adam_v"

struct Interval {
  size_t start = 0;
  size_t length = 0;
  bool operator==(const Interval&) const = default;
};

struct Piece {
  std::string tensor;  // the global tensor's name: "h3.fc.w"
  PieceKind kind = PieceKind::param;
  std::vector<size_t> global_shape;
  std::vector<Interval> box;  // one per dimension of global_shape
  size_t begin = 0, end = 0;  // of the box's elements, row-major

  size_t box_elements() const;
  size_t elements() const { return end - begin; }
  // The entry's name in a safetensors file: "h3.fc.w" for a parameter, "adam_m/h3.fc.w" for a
  // moment, with "[begin:end]" appended when the range is not the whole box.
  std::string entry_name() const;
  // The entry's shape: the box's lengths, or [elements] for a part of the box.
  std::vector<size_t> entry_shape() const;
  // The whole tensor as one piece.
  static Piece whole(std::string tensor, PieceKind kind, std::vector<size_t> global_shape);
};

nlohmann::json to_json(const Piece& p);
// Error(Corrupt) naming `where` when the description is malformed or out of the global shape.
Piece piece_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace weft::checkpoint
