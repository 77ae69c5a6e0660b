#include "checkpoint/manifest.h"

#include <cstdio>

#include "checkpoint/checksum.h"
#include "checkpoint/file_io.h"
#include "runtime/error.h"

namespace weft::checkpoint {
namespace {

constexpr const char* kChecksumField = "manifest_xxh64";

}  // namespace

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

std::string shard_file_name(int rank) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "rank-%05d.safetensors", rank);
  return buf;
}

nlohmann::json to_json(const ShardReport& r) {
  nlohmann::json pieces = nlohmann::json::array();
  for (const StoredPiece& p : r.pieces) {
    nlohmann::json j = to_json(p.piece);
    j["offset"] = p.offset;
    pieces.push_back(std::move(j));
  }
  std::vector<std::string> blocks;
  for (uint64_t b : r.blocks) blocks.push_back(to_hex(b));
  return {{"rank", r.rank},
          {"file", r.file},
          {"bytes", r.bytes},
          {"xxh64", to_hex(r.xxh64)},
          {"block_bytes", r.block_bytes},
          {"block_xxh64", blocks},
          {"pieces", pieces}};
}

ShardReport shard_report_from_json(const nlohmann::json& j, const std::string& where) {
  ShardReport r;
  try {
    r.rank = j.at("rank").get<int>();
    r.file = j.at("file").get<std::string>();
    r.bytes = j.at("bytes").get<uint64_t>();
    r.xxh64 = from_hex(j.at("xxh64").get<std::string>(), where);
    r.block_bytes = j.at("block_bytes").get<uint64_t>();
    for (const auto& b : j.at("block_xxh64"))
      r.blocks.push_back(from_hex(b.get<std::string>(), where));
    for (const auto& p : j.at("pieces"))
      r.pieces.push_back({piece_from_json(p, where), p.at("offset").get<uint64_t>()});
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corrupt, where + ": a malformed shard report (" + e.what() + ")");
  }
  if (r.file.empty() || r.file.find('/') != std::string::npos || r.file[0] == '.')
    throw Error(ErrorCode::Corrupt, where + ": shard file name '" + r.file + "' is not a name");
  if (r.block_bytes == 0 || r.blocks.size() != (r.bytes + r.block_bytes - 1) / r.block_bytes)
    throw Error(ErrorCode::Corrupt, where + ": shard " + r.file +
                                        " has block checksums that do "
                                        "not cover its " +
                                        std::to_string(r.bytes) + " bytes");
  for (const StoredPiece& p : r.pieces)
    if (p.offset + p.piece.elements() * sizeof(float) > r.bytes)
      throw Error(ErrorCode::Corrupt, where + ": a piece of " + p.piece.tensor +
                                          " lies past the "
                                          "end of " +
                                          r.file);
  return r;
}

std::string encode_manifest(const Manifest& m) {
  nlohmann::json j = m.job;
  j["step"] = m.step;
  nlohmann::json shards = nlohmann::json::array();
  for (const ShardReport& r : m.shards) shards.push_back(to_json(r));
  j["shards"] = shards;
  j.erase(kChecksumField);
  // The checksum is of this exact text (keys sorted, no spaces), which reading re-creates.
  j[kChecksumField] = to_hex(xxh64(j.dump().data(), j.dump().size()));
  return j.dump(1) + "\n";
}

Manifest read_manifest(const fs::path& dir, int64_t step) {
  const fs::path path = dir / step_dir_name(step) / kManifestFile;
  const std::string where = path.string();
  const std::string text = read_whole_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corrupt, where + " is not valid JSON (torn or edited): " + e.what());
  }
  if (!j.is_object() || !j.contains(kChecksumField))
    throw Error(ErrorCode::Corrupt, where + " has no " + kChecksumField + ": not a weft manifest");
  const uint64_t stated = from_hex(j[kChecksumField].get<std::string>(), where);
  j.erase(kChecksumField);
  const std::string canonical = j.dump();
  if (xxh64(canonical.data(), canonical.size()) != stated)
    throw Error(ErrorCode::Corrupt, where + " does not match its checksum (torn or edited)");
  Manifest m;
  try {
    if (j.at("format").get<std::string>() != kFormat)
      throw Error(ErrorCode::Corrupt,
                  where + " is of format " + j["format"].dump() + ", this weft reads " + kFormat);
    m.step = j.at("step").get<int64_t>();
    for (const auto& s : j.at("shards")) m.shards.push_back(shard_report_from_json(s, where));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corrupt, where + " is malformed: " + e.what());
  }
  if (m.step != step)
    throw Error(ErrorCode::Corrupt, where + " describes step " + std::to_string(m.step));
  j.erase("shards");
  m.job = std::move(j);
  return m;
}

}  // namespace weft::checkpoint
