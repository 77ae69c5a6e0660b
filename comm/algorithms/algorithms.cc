#include "comm/algorithms/algorithms.h"

#include <algorithm>
#include <array>
#include <string>

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

namespace {

// Why an exchange ran out of time, naming the first message still pending. Cold, out of line:
// the message's string building would otherwise weigh on every exchange's registers and stack.
[[gnu::cold, noreturn]] void throw_timeout(const AlgoContext& ctx, std::span<const Outgoing> sends,
                                           std::span<const bool> send_done,
                                           std::span<const Incoming> recvs,
                                           std::span<const bool> recv_done) {
  int peer = -1;
  const Fingerprint* late = &ctx.fp;
  auto first_pending = [&](const auto& messages, std::span<const bool> done) {
    for (size_t i = 0; peer < 0 && i < messages.size(); i++)
      if (!done[i]) {
        peer = messages[i].peer;
        if (messages[i].fp) late = messages[i].fp;
      }
  };
  first_pending(recvs, recv_done);
  const bool receiving = peer >= 0;
  first_pending(sends, send_done);
  throw Error(ErrorCode::Timeout,
              "rank " + std::to_string(ctx.rank()) + " timed out " +
                  (receiving ? "receiving from" : "sending to") + " rank " + std::to_string(peer) +
                  " in " + late->describe() + " over " + ctx.transport.name() +
                  ": that rank is stuck, slower, or calling a different collective; raise "
                  "WEFT_TIMEOUT if it is only slow");
}

// exchange() for at most kCap messages each way, with its requests on the stack. send_recv, the
// step of every ring, and any exchange of one message each way take kCap = 1: the 64-entry
// arrays a batch needs cost an 8-byte allreduce on two ranks about a tenth of its time.
template <size_t kCap>
void exchange_upto(const AlgoContext& ctx, std::span<const Outgoing> sends,
                   std::span<const Incoming> recvs) {
  Transport& t = ctx.transport;
  // Usually send first: the peer's wait ends when our data lands, so it leaves before anything
  // else. (On shm, posting the receive first looks at the peer's incoming slot while the peer
  // writes it, and that cache miss delays our send: 560 against 400 ns per 8-byte exchange.)
  // MPI's rendezvous wants the receive posted first (Transport::receive_first).
  // Past this check the compiler knows the bound too: at kCap = 1 the loops below are branches.
  if (sends.size() > kCap || recvs.size() > kCap)
    throw Error(ErrorCode::Internal,
                "exchange: more than " + std::to_string(kCap) + " messages each way");
  std::array<Transport::Request, kCap> sr{}, rr{};
  auto post_recvs = [&] {
    for (size_t i = 0; i < recvs.size(); i++)
      rr[i] = t.irecv(recvs[i].peer, recvs[i].data, recvs[i].bytes,
                      recvs[i].fp ? *recvs[i].fp : ctx.fp);
  };
  const bool receive_first = t.receive_first();
  if (receive_first) post_recvs();
  for (size_t i = 0; i < sends.size(); i++)
    sr[i] = t.isend(sends[i].peer, sends[i].data, sends[i].bytes,
                    sends[i].fp ? *sends[i].fp : ctx.fp);
  if (!receive_first) post_recvs();
  // Completed requests are tested no more (a transport retires a request when test() says done).
  size_t sends_left = sends.size(), recvs_left = recvs.size();
  std::array<bool, kCap> send_done{}, recv_done{};
  auto all_done = [&] {
    for (size_t i = 0; i < recvs.size(); i++)
      if (!recv_done[i] && (recv_done[i] = t.test(rr[i]))) recvs_left--;
    for (size_t i = 0; i < sends.size(); i++)
      if (!send_done[i] && (send_done[i] = t.test(sr[i]))) sends_left--;
    return sends_left == 0 && recvs_left == 0;
  };
  // An exchange whose messages have all moved already (its peers sent first) ends here, before
  // any wait: nothing to time, nobody to notify.
  if (all_done()) return;
  // A point-to-point receive that waits long tells its peer (stall_notice.h). Its first wait
  // sleeps at most their patience, counted from when it sleeps (the clock is read only then),
  // and never past the op's deadline; wait_for_progress() never waits past that either.
  StallNotices notices;
  for (const Incoming& in : recvs) notices.add(in.peer, in.fp ? in.fp : &ctx.fp);
  t.wait_for_progress(notices.empty() ? ctx.deadline : notices.first_wait(ctx.deadline));
  for (;;) {
    if (all_done()) return notices.finish(t);
    const Clock::time_point now = Clock::now();
    if (now >= ctx.deadline.get())
      throw_timeout(ctx, sends, std::span<const bool>(send_done.data(), sends.size()), recvs,
                    std::span<const bool>(recv_done.data(), recvs.size()));
    notices.tick(t, now);
    t.wait_for_progress(notices.sleep_until(ctx.deadline.get()));
  }
}

}  // namespace

void send_recv(const AlgoContext& ctx, int to, const void* send_buf, size_t send_bytes, int from,
               void* recv_buf, size_t recv_bytes) {
  Outgoing out{to, send_buf, send_bytes, nullptr};
  Incoming in{from, recv_buf, recv_bytes, nullptr};
  exchange_upto<1>(ctx, std::span<const Outgoing>(&out, to < 0 ? 0 : 1),
                   std::span<const Incoming>(&in, from < 0 ? 0 : 1));
}

void exchange(const AlgoContext& ctx, std::span<const Outgoing> sends,
              std::span<const Incoming> recvs) {
  if (sends.size() <= 1 && recvs.size() <= 1)
    exchange_upto<1>(ctx, sends, recvs);
  else
    exchange_upto<kMaxExchange>(ctx, sends, recvs);
}

}  // namespace weft::comm
