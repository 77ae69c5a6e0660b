#include "comm/rendezvous/store_wire.h"

#include <charconv>
#include <cstring>

namespace weft::comm::store_wire {

std::string encode(uint32_t id, uint8_t code, const std::vector<std::string>& parts) {
  size_t total = 4 + 1;
  for (const auto& p : parts) total += 4 + p.size();
  std::string m;
  m.reserve(4 + total);
  auto put_u32 = [&m](uint32_t v) { m.append(reinterpret_cast<const char*>(&v), 4); };
  put_u32(static_cast<uint32_t>(total));
  put_u32(id);
  m.push_back(static_cast<char>(code));
  for (const auto& p : parts) {
    put_u32(static_cast<uint32_t>(p.size()));
    m += p;
  }
  return m;
}

bool decode(const char* body, size_t size, Message& out) {
  if (size < 5) return false;
  std::memcpy(&out.id, body, 4);
  out.code = static_cast<uint8_t>(body[4]);
  for (size_t at = 5; at < size;) {
    uint32_t n;
    if (size - at < 4) return false;
    std::memcpy(&n, body + at, 4);
    at += 4;
    if (size - at < n) return false;
    out.parts.emplace_back(body + at, n);
    at += n;
  }
  return true;
}

bool parse_int(const std::string& s, int64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "'" : ", '") + i + "'";
  return s;
}

}  // namespace weft::comm::store_wire
