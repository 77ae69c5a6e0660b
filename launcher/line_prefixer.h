#pragma once
// LinePrefixer: turns one rank's raw output stream into whole lines tagged "[rank K] ".
// Bytes arrive in arbitrary pieces from a pipe; only complete lines are emitted, so lines of
// different ranks never interleave mid-line. Pure: no I/O.
#include <cstddef>
#include <string>
#include <string_view>

namespace weft::launcher {

class LinePrefixer {
 public:
  // A partial line longer than this is emitted as if it ended, so a rank that never writes
  // '\n' (progress bars) cannot make weftrun buffer without bound.
  static constexpr size_t kMaxLineBytes = 64 * 1024;

  explicit LinePrefixer(std::string prefix) : prefix_(std::move(prefix)) {}

  // Appends every line completed by `bytes` to `out`, each prefixed and ending in '\n'.
  void feed(std::string_view bytes, std::string& out);
  // Appends the unfinished last line, if any, with a '\n' added (at EOF).
  void finish(std::string& out);
  bool has_partial_line() const { return !partial_.empty(); }

 private:
  void emit(std::string_view line, std::string& out) const;

  std::string prefix_;
  std::string partial_;
};

// "[rank 3] " when tagging, "" when not.
std::string rank_prefix(int rank, bool tag_output);

}  // namespace weft::launcher
