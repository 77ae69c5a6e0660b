#include "checkpoint/checksum.h"

#include <xxhash.h>

#include <cstdio>

#include "runtime/error.h"

namespace weft::checkpoint {

struct Xxh64Stream::State {
  XXH64_state_t* s = XXH64_createState();
  ~State() { XXH64_freeState(s); }
};

uint64_t xxh64(const void* data, size_t bytes) { return XXH64(data, bytes, 0); }

std::string to_hex(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

uint64_t from_hex(const std::string& text, const std::string& what) {
  uint64_t v = 0;
  if (text.size() != 16) throw Error(ErrorCode::Corrupt, what + ": '" + text + "' is no checksum");
  for (char c : text) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) throw Error(ErrorCode::Corrupt, what + ": '" + text + "' is no checksum");
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

Xxh64Stream::Xxh64Stream() : state_(std::make_unique<State>()) {
  if (!state_->s) throw Error(ErrorCode::Internal, "XXH64_createState failed");
  XXH64_reset(state_->s, 0);
}
Xxh64Stream::~Xxh64Stream() = default;

void Xxh64Stream::update(const void* data, size_t bytes) { XXH64_update(state_->s, data, bytes); }
uint64_t Xxh64Stream::digest() const { return XXH64_digest(state_->s); }

}  // namespace weft::checkpoint
