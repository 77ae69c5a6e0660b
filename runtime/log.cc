#include "runtime/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace weft::log {
namespace {

std::atomic<int> g_rank{-1};

Level parse_level() {
  const char* v = std::getenv("WEFT_LOG");
  if (!v || !*v) return Level::warn;
  if (!std::strcmp(v, "error")) return Level::error;
  if (!std::strcmp(v, "info")) return Level::info;
  if (!std::strcmp(v, "debug")) return Level::debug;
  return Level::warn;
}

const char* level_name(Level l) {
  switch (l) {
    case Level::error: return "error";
    case Level::warn: return "warn";
    case Level::info: return "info";
    case Level::debug: return "debug";
  }
  return "?";
}

}  // namespace

Level level() {
  static const Level lvl = parse_level();
  return lvl;
}

void set_rank(int rank) { g_rank.store(rank); }

void write(Level lvl, const std::string& message) {
  std::string line = "[weft";
  int r = g_rank.load();
  if (r >= 0) line += " rank " + std::to_string(r);
  line += std::string(" ") + level_name(lvl) + "] " + message + "\n";
  // One write(2) per line so lines from threads and ranks do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace weft::log
