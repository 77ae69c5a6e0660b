#include "comm/algorithms/algorithms.h"

#include "runtime/error.h"

namespace weft::comm {

std::pair<size_t, size_t> block_range(size_t total, int parts, int i) {
  size_t base = total / static_cast<size_t>(parts);
  size_t extra = total % static_cast<size_t>(parts);
  size_t idx = static_cast<size_t>(i);
  size_t first = idx * base + std::min(idx, extra);
  return {first, base + (idx < extra ? 1 : 0)};
}

void send_recv(const AlgoContext& ctx, int to, const void* send_buf, size_t send_bytes, int from,
               void* recv_buf, size_t recv_bytes) {
  Transport& t = ctx.transport;
  // Usually send first: the peer's wait ends when our data lands, so it leaves before anything
  // else. (On shm, posting the receive first looks at the peer's incoming slot while the peer
  // writes it, and that cache miss delays our send: 560 against 400 ns per 8-byte exchange.)
  // MPI's rendezvous wants the receive posted first (Transport::receive_first).
  bool recv_done = from < 0, send_done = to < 0;
  Transport::Request rr = 0, sr = 0;
  if (!recv_done && t.receive_first()) rr = t.irecv(from, recv_buf, recv_bytes, ctx.fp);
  if (!send_done) sr = t.isend(to, send_buf, send_bytes, ctx.fp);
  if (!recv_done && !t.receive_first()) rr = t.irecv(from, recv_buf, recv_bytes, ctx.fp);
  for (bool first_pass = true;; first_pass = false) {
    if (!recv_done) recv_done = t.test(rr);
    if (!send_done) send_done = t.test(sr);
    if (recv_done && send_done) return;
    // Not on the first pass: a small exchange usually ends on the second, and a clock read
    // (about 27 ns) is a tenth of its cost. wait_for_progress() never waits past the deadline.
    if (!first_pass && Clock::now() >= ctx.deadline.get()) {
      int peer = recv_done ? to : from;
      throw Error(ErrorCode::Timeout,
                  "rank " + std::to_string(ctx.rank()) + " timed out " +
                      (recv_done ? "sending to" : "receiving from") + " rank " +
                      std::to_string(peer) + " in " + ctx.fp.describe() + " over " + t.name() +
                      ": that rank is stuck, slower, or calling a different collective; raise "
                      "WEFT_TIMEOUT if it is only slow");
    }
    t.wait_for_progress(ctx.deadline);
  }
}

}  // namespace weft::comm
