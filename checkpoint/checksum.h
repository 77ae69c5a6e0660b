#pragma once
// xxHash64 (Debian's libxxhash) of checkpoint files: of the whole file, reported to the
// committer, and of each fixed-size block, so that a rank reading a few byte ranges verifies
// just the blocks it reads. Written in the manifest as 16 hex digits.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace weft::checkpoint {

uint64_t xxh64(const void* data, size_t bytes);
std::string to_hex(uint64_t value);
// Error(Corrupt) naming `what` unless `text` is 16 hex digits.
uint64_t from_hex(const std::string& text, const std::string& what);

// A running xxHash64 over bytes fed in pieces.
class Xxh64Stream {
 public:
  Xxh64Stream();
  ~Xxh64Stream();
  Xxh64Stream(const Xxh64Stream&) = delete;
  Xxh64Stream& operator=(const Xxh64Stream&) = delete;
  void update(const void* data, size_t bytes);
  uint64_t digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace weft::checkpoint
