#include "parallel/adamw_segments.h"

#include <algorithm>

namespace weft::parallel {

std::vector<AdamWSegment> adamw_segments(const std::vector<ShardRange>& owned,
                                         const std::vector<DecaySpan>& spans) {
  std::vector<AdamWSegment> segments;
  // Intersect each owned range with the decay spans; whatever no span covers is padding and
  // is stepped without decay (its gradient is zero, so it stays put).
  size_t state = 0;
  for (const ShardRange& r : owned) {
    size_t pos = r.offset, end = r.offset + r.count;
    while (pos < end) {
      bool decay = false;
      size_t stop = end;
      for (const DecaySpan& s : spans) {
        if (s.offset <= pos && pos < s.offset + s.count) {
          decay = s.decay;
          stop = std::min(end, s.offset + s.count);
          break;
        }
        if (s.offset > pos) stop = std::min(stop, s.offset);
      }
      // Merge with the previous segment when contiguous and alike: fewer, longer kernel calls.
      if (!segments.empty() && segments.back().decay == decay &&
          segments.back().offset + segments.back().count == pos) {
        segments.back().count += stop - pos;
      } else {
        segments.push_back({pos, stop - pos, state, decay});
      }
      state += stop - pos;
      pos = stop;
    }
  }
  return segments;
}

size_t state_elements(const std::vector<AdamWSegment>& segments) {
  size_t total = 0;
  for (const AdamWSegment& s : segments) total += s.count;
  return total;
}

}  // namespace weft::parallel
