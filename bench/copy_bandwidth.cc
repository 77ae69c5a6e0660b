#include "bench/copy_bandwidth.h"

#include <cstring>

#include "runtime/clock.h"

namespace weft::bench {

CopyProbe::CopyProbe(size_t bytes) : src_(bytes), dst_(bytes) {
  // Buffer zero-fills dst; give src a non-zero pattern so the copy cannot be shortcut.
  std::memset(src_.data(), 0x5a, bytes);
}

double CopyProbe::seconds_for(int reps) {
  Clock::time_point start = Clock::now();
  for (int i = 0; i < reps; ++i) {
    std::memcpy(dst_.data(), src_.data(), src_.size());
    // The copy's result is never read: tell the compiler memory is observed so it stays.
    asm volatile("" : : "r"(dst_.data()) : "memory");
  }
  return seconds_since(start);
}

}  // namespace weft::bench
