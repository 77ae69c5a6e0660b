#pragma once
// What the coordinator's service and its client agree on beyond the .proto: the sizes a request
// may have, and how the store's integers are written.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>

namespace weft::comm {

inline constexpr size_t kMaxMessageBytes = 64u << 20;  // a larger value is not rendezvous data
inline constexpr size_t kMaxKeyBytes = 4096;
inline constexpr size_t kMaxWaitKeys = 65536;

// A whole decimal integer, or false: what add() finds at a key it adds to.
inline bool parse_store_int(const std::string& s, int64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

}  // namespace weft::comm
