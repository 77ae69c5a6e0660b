#include "checkpoint/piece.h"

#include "runtime/error.h"

namespace weft::checkpoint {

const char* kind_name(PieceKind k) {
  switch (k) {
    case PieceKind::param:
      return "param";
    case PieceKind::adam_m:
      return "adam_m";
    case PieceKind::adam_v:
      return "adam_v";
  }
  return "?";
}

size_t Piece::box_elements() const {
  size_t n = 1;
  for (const Interval& i : box) n *= i.length;
  return n;
}

std::string Piece::entry_name() const {
  std::string name =
      kind == PieceKind::param ? tensor : std::string(kind_name(kind)) + "/" + tensor;
  if (begin != 0 || end != box_elements())
    name += "[" + std::to_string(begin) + ":" + std::to_string(end) + "]";
  return name;
}

std::vector<size_t> Piece::entry_shape() const {
  if (begin != 0 || end != box_elements()) return {elements()};
  std::vector<size_t> shape;
  for (const Interval& i : box) shape.push_back(i.length);
  return shape;
}

Piece Piece::whole(std::string tensor, PieceKind kind, std::vector<size_t> global_shape) {
  Piece p;
  p.tensor = std::move(tensor);
  p.kind = kind;
  p.global_shape = std::move(global_shape);
  for (size_t d : p.global_shape) p.box.push_back({0, d});
  p.end = p.box_elements();
  return p;
}

nlohmann::json to_json(const Piece& p) {
  nlohmann::json box = nlohmann::json::array();
  for (const Interval& i : p.box) box.push_back({i.start, i.length});
  return {{"tensor", p.tensor},
          {"kind", kind_name(p.kind)},
          {"global_shape", p.global_shape},
          {"box", box},
          {"range", {p.begin, p.end}}};
}

Piece piece_from_json(const nlohmann::json& j, const std::string& where) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::Corrupt, where + ": a piece " + why + ": " + j.dump());
  };
  Piece p;
  try {
    p.tensor = j.at("tensor").get<std::string>();
    const std::string kind = j.at("kind").get<std::string>();
    if (kind == "param")
      p.kind = PieceKind::param;
    else if (kind == "adam_m")
      p.kind = PieceKind::adam_m;
    else if (kind == "adam_v")
      p.kind = PieceKind::adam_v;
    else
      throw bad("of unknown kind");
    p.global_shape = j.at("global_shape").get<std::vector<size_t>>();
    for (const auto& b : j.at("box"))
      p.box.push_back({b.at(0).get<size_t>(), b.at(1).get<size_t>()});
    p.begin = j.at("range").at(0).get<size_t>();
    p.end = j.at("range").at(1).get<size_t>();
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("is malformed (") + e.what() + ")");
  }
  if (p.box.size() != p.global_shape.size()) throw bad("has a box of another rank than its shape");
  for (size_t d = 0; d < p.box.size(); d++)
    if (p.box[d].start + p.box[d].length > p.global_shape[d]) throw bad("lies outside its tensor");
  if (p.begin > p.end || p.end > p.box_elements()) throw bad("has a range outside its box");
  return p;
}

}  // namespace weft::checkpoint
