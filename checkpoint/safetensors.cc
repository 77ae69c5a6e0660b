#include "checkpoint/safetensors.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace weft::checkpoint {
namespace {

// A header past this is no checkpoint's (safetensors itself caps it at 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

}  // namespace

std::string encode_safetensors_header(const std::vector<SafetensorsEntry>& entries,
                                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const SafetensorsEntry& e : entries)
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; i++) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i) & 0xff);
  return out + json;
}

uint64_t safetensors_header_bytes(const std::string& prefix, const std::string& file) {
  if (prefix.size() < 8)
    throw Error(ErrorCode::Corrupt, file + " is shorter than a safetensors header's length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = n << 8 | static_cast<unsigned char>(prefix[static_cast<size_t>(i)]);
  if (n > kMaxHeaderBytes)
    throw Error(ErrorCode::Corrupt, file + " claims a safetensors header of " + std::to_string(n) +
                                        " bytes: not a safetensors file, or corrupted");
  return n;
}

SafetensorsHeader decode_safetensors_header(const std::string& prefix, const std::string& file) {
  const uint64_t n = safetensors_header_bytes(prefix, file);
  if (prefix.size() < 8 + n)
    throw Error(ErrorCode::Corrupt, file + " ends inside its safetensors header");
  SafetensorsHeader h;
  h.data_start = 8 + n;
  try {
    auto json =
        nlohmann::json::parse(prefix.begin() + 8, prefix.begin() + 8 + static_cast<long>(n));
    uint64_t expected = 0;
    for (auto& [name, value] : json.items()) {
      if (name == "__metadata__") {
        h.metadata = value.get<std::map<std::string, std::string>>();
        continue;
      }
      SafetensorsEntry e;
      e.name = name;
      e.dtype = value.at("dtype").get<std::string>();
      e.shape = value.at("shape").get<std::vector<size_t>>();
      e.begin = value.at("data_offsets").at(0).get<uint64_t>();
      e.end = value.at("data_offsets").at(1).get<uint64_t>();
      h.entries.push_back(std::move(e));
    }
    std::sort(h.entries.begin(), h.entries.end(),
              [](const auto& a, const auto& b) { return a.begin < b.begin; });
    for (const SafetensorsEntry& e : h.entries) {
      if (e.begin != expected || e.end < e.begin)
        throw Error(ErrorCode::Corrupt, file + ": entry " + e.name + " is not where it should be");
      expected = e.end;
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corrupt, file + " has a malformed safetensors header: " + e.what());
  }
  return h;
}

}  // namespace weft::checkpoint
