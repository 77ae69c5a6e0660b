#pragma once
// The safetensors container (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header (each entry's dtype, shape and data offsets, and a
// "__metadata__" map of strings), padded with spaces to a multiple of 8 bytes, then the data.
// weft writes F32 entries only; the metadata carries, per entry, the piece it holds
// (checkpoint/piece.h) as JSON, so a reader without weft (numpy) knows where it goes.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace weft::checkpoint {

struct SafetensorsEntry {
  std::string name;
  std::string dtype = "F32";
  std::vector<size_t> shape;
  uint64_t begin = 0, end = 0;  // bytes, from the start of the data
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsEntry> entries;  // in data order
  uint64_t data_start = 0;                // bytes from the start of the file
};

// The file's first data_start bytes for `entries` (whose offsets the caller chose, in order).
std::string encode_safetensors_header(const std::vector<SafetensorsEntry>& entries,
                                      const std::map<std::string, std::string>& metadata);
// Reads a header from the file's first bytes (`prefix` must hold at least 8 + its length; the
// length alone is prefix's first 8 bytes). Error(Corrupt) naming `file` when it is malformed.
uint64_t safetensors_header_bytes(const std::string& prefix, const std::string& file);
SafetensorsHeader decode_safetensors_header(const std::string& prefix, const std::string& file);

}  // namespace weft::checkpoint
