#pragma once
// A 64-bit FNV-1a checksum: cheap, dependency-free, and the same on every machine, for telling
// whether two ranks hold the same bytes (weft-train's replicas and training data). Not for
// security: anyone can make two inputs with one checksum.
#include <cstddef>
#include <cstdint>

namespace weft {

inline uint64_t checksum(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace weft
