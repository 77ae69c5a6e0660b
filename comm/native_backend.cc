#include "comm/native_backend.h"

namespace weft::comm {

std::string describe_disagreement(int me, const char* backend, const Fingerprint* fps, int n) {
  // Name rank 0 and the first rank that differs from it: the same pair on every rank.
  for (int r = 1; r < n; r++) {
    if (fps[r] == fps[0]) continue;
    return "rank " + std::to_string(me) + ": ranks disagree on a collective over " + backend +
           ": rank 0 called " + fps[0].describe() + " but rank " + std::to_string(r) +
           " called " + fps[r].describe() +
           "; every rank must call the same collectives in the same order with the same dtype, "
           "count, op and root";
  }
  return "";
}

}  // namespace weft::comm
