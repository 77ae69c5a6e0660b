#pragma once
// Memory copy bandwidth: the yardstick of the memory-traffic bound in bench/compare-collectives.
// A collective over shared memory is, at heart, a sequence of copies and reductions, so the
// bandwidth of a plain memcpy, measured while every rank copies at the same time (they share the
// memory bus), bounds how fast it can go.
#include <cstddef>

#include "runtime/buffer.h"

namespace weft::bench {

class CopyProbe {
 public:
  // Two buffers of `bytes`, touched here so no page fault lands inside a timed copy.
  explicit CopyProbe(size_t bytes);

  // Wall time of `reps` back-to-back memcpys of the whole buffer.
  double seconds_for(int reps);
  size_t bytes() const { return src_.size(); }

 private:
  Buffer src_;
  Buffer dst_;
};

// How the probe is run, the same in every program: all ranks copy `kCopyReps` times after a
// barrier; the slowest rank's time counts; the best of `kCopyRounds` rounds is reported. Many
// short rounds rather than one long one: on a shared 2-core machine a round is easily disturbed,
// and the best round is the machine's real bandwidth.
inline constexpr int kCopyReps = 2;
inline constexpr int kCopyRounds = 8;

// (bytes read + bytes written) per second, in GB/s (G = 1e9): a memcpy of B bytes moves 2B.
inline double copy_gbs(size_t bytes, int reps, double seconds) {
  return seconds > 0 ? 2.0 * static_cast<double>(bytes) * reps / seconds / 1e9 : 0.0;
}

}  // namespace weft::bench
