// Fingerprint exchange: every rank learns every rank's fingerprint before a rooted collective
// moves any data, so ranks that disagree on the root (or the count, dtype, op) all fail
// together, with the same message, instead of some of them finishing.
//
// Why rooted collectives need it: a root only sends, so nothing it receives could tell it that
// a peer disagrees. Two ranks that each believe they are the root both send and neither
// receives: a small message completes on both (each with its own data), a large one waits
// forever. The ops in which every rank receives from a peer (allreduce, allgather, ...) need no
// exchange: their messages carry the fingerprint.
//
// An allgather by Bruck's algorithm: ceil(log2 n) steps, in step d rank r sends what it holds
// to r-d and receives r+d's. A message's header names only the op and its sequence number
// (Fingerprint::exchange), so the exchange itself completes whatever else the ranks disagree
// on, and the comparison happens on the payload, on every rank.
#include <algorithm>
#include <array>
#include <vector>

#include "comm/native_backend.h"
#include "comm/algorithms/ring_steps.h"
#include "runtime/error.h"

namespace weft::comm {

void exchange_fingerprints(const AlgoContext& ctx) {
  const int n = ctx.size(), r = ctx.rank();
  if (n == 1) return;
  // all[i] ends as rank (r + i) % n's fingerprint. On the stack up to 64 ranks (2 KiB).
  std::array<WireFingerprint, 64> small;
  std::vector<WireFingerprint> large;
  WireFingerprint* all = small.data();
  if (static_cast<size_t>(n) > small.size()) {
    large.resize(static_cast<size_t>(n));
    all = large.data();
  }
  all[0] = encode(ctx.fp);
  AlgoContext x = ctx;
  x.fp = Fingerprint{};
  x.fp.seq = ctx.fp.seq;
  x.fp.op = ctx.fp.op;
  x.fp.exchange = true;
  for (int d = 1; d < n; d *= 2) {
    size_t bytes = static_cast<size_t>(std::min(d, n - d)) * sizeof(WireFingerprint);
    send_recv(x, ring_mod(r - d, n), all, bytes, ring_mod(r + d, n), all + d, bytes);
  }
  if (std::all_of(all, all + n, [&](const WireFingerprint& w) { return w == all[0]; })) return;
  std::vector<Fingerprint> by_rank(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) by_rank[static_cast<size_t>((r + i) % n)] = decode(all[i]);
  throw Error(ErrorCode::InvalidArgument,
              describe_disagreement(r, ctx.transport.name(), by_rank.data(), n));
}

}  // namespace weft::comm
