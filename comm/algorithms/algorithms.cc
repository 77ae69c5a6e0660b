#include "comm/algorithms/algorithms.h"

#include <array>

#include "comm/stall_notice.h"
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
  Outgoing out{to, send_buf, send_bytes};
  Incoming in{from, recv_buf, recv_bytes};
  exchange(ctx, std::span<const Outgoing>(&out, to < 0 ? 0 : 1),
           std::span<const Incoming>(&in, from < 0 ? 0 : 1));
}

void exchange(const AlgoContext& ctx, std::span<const Outgoing> sends,
              std::span<const Incoming> recvs) {
  Transport& t = ctx.transport;
  // Usually send first: the peer's wait ends when our data lands, so it leaves before anything
  // else. (On shm, posting the receive first looks at the peer's incoming slot while the peer
  // writes it, and that cache miss delays our send: 560 against 400 ns per 8-byte exchange.)
  // MPI's rendezvous wants the receive posted first (Transport::receive_first).
  constexpr size_t kOnStack = kMaxExchange;
  if (sends.size() > kOnStack || recvs.size() > kOnStack)
    throw Error(ErrorCode::Internal, "exchange: more than 64 messages each way");
  std::array<Transport::Request, kOnStack> sr{}, rr{};
  auto post_recvs = [&] {
    for (size_t i = 0; i < recvs.size(); i++)
      rr[i] = t.irecv(recvs[i].peer, recvs[i].data, recvs[i].bytes,
                      recvs[i].fp ? *recvs[i].fp : ctx.fp);
  };
  if (t.receive_first()) post_recvs();
  for (size_t i = 0; i < sends.size(); i++)
    sr[i] = t.isend(sends[i].peer, sends[i].data, sends[i].bytes,
                    sends[i].fp ? *sends[i].fp : ctx.fp);
  if (!t.receive_first()) post_recvs();
  // Completed requests are tested no more (a transport retires a request when test() says done).
  size_t sends_left = sends.size(), recvs_left = recvs.size();
  std::array<bool, kOnStack> send_done{}, recv_done{};
  // A point-to-point receive that waits long tells its peer (stall_notice.h).
  StallNotices notices;
  for (const Incoming& in : recvs) notices.add(in.peer, in.fp ? in.fp : &ctx.fp);
  for (bool first_pass = true;; first_pass = false) {
    for (size_t i = 0; i < recvs.size(); i++)
      if (!recv_done[i] && (recv_done[i] = t.test(rr[i]))) recvs_left--;
    for (size_t i = 0; i < sends.size(); i++)
      if (!send_done[i] && (send_done[i] = t.test(sr[i]))) sends_left--;
    if (sends_left == 0 && recvs_left == 0) return notices.finish(t);
    // Not on the first pass: a small exchange usually ends on the second, and a clock read
    // (about 27 ns) is a tenth of its cost. wait_for_progress() never waits past the deadline.
    Clock::time_point now{};
    if (!first_pass) now = Clock::now();
    if (!first_pass && now >= ctx.deadline.get()) {
      bool receiving = recvs_left > 0;
      int peer = -1;
      const Fingerprint* late = &ctx.fp;
      auto first_pending = [&](const auto& messages, const auto& done) {
        for (size_t i = 0; peer < 0 && i < messages.size(); i++)
          if (!done[i]) {
            peer = messages[i].peer;
            if (messages[i].fp) late = messages[i].fp;
          }
      };
      first_pending(recvs, recv_done);
      first_pending(sends, send_done);
      throw Error(ErrorCode::Timeout,
                  "rank " + std::to_string(ctx.rank()) + " timed out " +
                      (receiving ? "receiving from" : "sending to") + " rank " +
                      std::to_string(peer) + " in " + late->describe() + " over " + t.name() +
                      ": that rank is stuck, slower, or calling a different collective; raise "
                      "WEFT_TIMEOUT if it is only slow");
    }
    // The first wait of an op that may send notices sleeps at most their patience, counted
    // from when it sleeps (the clock is read only then), and never past the op's deadline.
    if (first_pass) {
      t.wait_for_progress(notices.empty() ? ctx.deadline : notices.first_wait(ctx.deadline));
    } else {
      notices.tick(t, now);
      t.wait_for_progress(notices.sleep_until(ctx.deadline.get()));
    }
  }
}

}  // namespace weft::comm
