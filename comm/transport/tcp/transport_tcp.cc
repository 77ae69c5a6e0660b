// TCP transport: one full-duplex connection per pair of ranks; non-blocking sockets driven by
// whichever thread polls the transport (the communicator's progress engine). Set-up, the mesh
// of connections and the hello that proves each belongs to the job, is tcp_mesh.cc.
//
// Data: each message is a FrameHeader followed by its payload. Per peer, sends and receives are
// FIFO queues of request slots of which only the head moves; a receive reads the header first,
// checks it against what was posted, then reads the payload straight into the caller's buffer.
// Failures and aborting are tcp_failures.cc.
#include "comm/transport/tcp/transport_tcp.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "comm/rendezvous/job_token.h"
#include "comm/transport/tcp/tcp_mesh.h"
#include "comm/transport/tcp/tcp_transport.h"
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/socket.h"

namespace weft::comm::tcp {

TcpTransport::TcpTransport(const TransportSetup& s, std::vector<UniqueFd> fds)
    : rank_(s.rank), peers_(static_cast<size_t>(s.size)), ledger_(s.size) {
  for (size_t p = 0; p < fds.size(); p++) peers_[p].fd = std::move(fds[p]);
  wake_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throw_errno("eventfd()");
  slots_.resize(256);
  free_.reserve(slots_.size());
  for (size_t i = slots_.size(); i > 0; i--) free_.push_back(static_cast<uint32_t>(i - 1));
  pfds_.reserve(peers_.size() + 1);
  pfd_peer_.reserve(peers_.size() + 1);
}

TcpTransport::~TcpTransport() {
  // An abort() that found another thread mid-verb left telling the peers to it; do it now.
  try {
    std::lock_guard lock(mu_);
    if (aborted_.load()) apply_abort();
  } catch (...) {
  }
}

// ---- posting and retiring ----

Transport::Request TcpTransport::isend(int peer, const void* data, size_t bytes,
                                       const Fingerprint& fp) {
  std::lock_guard lock(mu_);
  uint32_t slot = post(true, peer, static_cast<char*>(const_cast<void*>(data)), bytes, fp);
  // Start writing at once when nothing is ahead of it: the bytes move before the first test().
  if (slots_[slot].state == State::queued && peers_[peer].sends.head == slot) pump_out(peer);
  return (uint64_t{slots_[slot].generation} << 32) | slot;
}

Transport::Request TcpTransport::irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) {
  std::lock_guard lock(mu_);
  uint32_t slot = post(false, peer, static_cast<char*>(data), bytes, fp);
  return (uint64_t{slots_[slot].generation} << 32) | slot;
}

uint32_t TcpTransport::post(bool is_send, int peer, char* data, size_t bytes,
                            const Fingerprint& fp) {
  if (peer < 0 || peer >= size() || peer == rank_)
    throw Error(ErrorCode::InvalidArgument, "tcp: rank " + std::to_string(rank_) + " cannot " +
                                                (is_send ? "send to" : "receive from") + " rank " +
                                                std::to_string(peer) + " in " + fp.describe() +
                                                " (group of " + std::to_string(size()) + ")");
  if (aborted_.load()) apply_abort();
  if (free_.empty()) {  // only when more requests are in flight than ever before
    size_t old = slots_.size();
    slots_.resize(old * 2);
    for (size_t i = slots_.size(); i > old; i--) free_.push_back(static_cast<uint32_t>(i - 1));
  }
  uint32_t slot = free_.back();
  free_.pop_back();
  Req& r = slots_[slot];
  r.state = State::queued;
  r.is_send = is_send;
  r.peer = peer;
  r.data = data;
  r.bytes = bytes;
  r.fp = fp;
  r.sent = 0;
  r.next = kNone;
  r.withdrawn = false;
  if (is_send) r.header = ledger_.header(fp, bytes, peer);
  Peer& p = peers_[peer];
  if (aborted_.load()) {
    std::lock_guard alock(abort_mu_);
    fail(slot, abort_code_, abort_message_);
  } else if (p.lost || (is_send && p.send_closed)) {
    fail(slot, ErrorCode::PeerLost, lost_message(r));
  } else {
    push(is_send ? p.sends : p.recvs, slot);
  }
  return slot;
}

void TcpTransport::push(Queue& q, uint32_t slot) {
  if (q.empty())
    q.head = slot;
  else
    slots_[q.tail].next = slot;
  q.tail = slot;
}

uint32_t TcpTransport::pop(Queue& q) {
  uint32_t slot = q.head;
  q.head = slots_[slot].next;
  if (q.head == kNone) q.tail = kNone;
  slots_[slot].next = kNone;
  return slot;
}

// Takes `slot` out of `q` wherever it is (queues are short: the requests of one op or a few).
void TcpTransport::unlink(Queue& q, uint32_t slot) {
  uint32_t prev = kNone;
  for (uint32_t s = q.head; s != kNone; prev = s, s = slots_[s].next) {
    if (s != slot) continue;
    (prev == kNone ? q.head : slots_[prev].next) = slots_[s].next;
    if (q.tail == s) q.tail = prev;
    slots_[s].next = kNone;
    return;
  }
}

uint32_t TcpTransport::slot_of(Request r) const {
  uint32_t slot = static_cast<uint32_t>(r);
  if (slot >= slots_.size() || slots_[slot].generation != (r >> 32) ||
      slots_[slot].state == State::free)
    throw Error(ErrorCode::InvalidArgument, "tcp: rank " + std::to_string(rank_) +
                                                " tested an unknown or already retired request");
  return slot;
}

bool TcpTransport::test(Request id) {
  std::lock_guard lock(mu_);
  if (aborted_.load()) apply_abort();
  uint32_t slot = slot_of(id);
  Req& r = slots_[slot];
  if (r.state == State::queued) progress();
  if (r.state == State::queued) return false;
  // Retire: the slot is free for reuse, and this id is stale from now on.
  bool ok = r.state == State::done;
  ErrorCode code = r.code;
  std::string error = std::move(r.error);
  release(slot);
  if (!ok) throw Error(code, error);
  return true;
}

void TcpTransport::release(uint32_t slot) {
  Req& r = slots_[slot];
  r.error.clear();
  r.state = State::free;
  r.generation++;
  free_.push_back(slot);
}

// A notice not yet started leaves the stream untouched; one partly written must be finished
// (the peer reads frames whole): it stays at the head of its queue, moving as any send would,
// and frees itself when written or failed (complete, fail).
void TcpTransport::withdraw_notice(Request id) {
  std::lock_guard lock(mu_);
  uint32_t slot = slot_of(id);
  Req& r = slots_[slot];
  if (r.state == State::queued && r.sent > 0) return void(r.withdrawn = true);
  if (r.state == State::queued) unlink(peers_[r.peer].sends, slot);
  release(slot);
}

void TcpTransport::complete(uint32_t slot) {
  slots_[slot].state = State::done;
  if (slots_[slot].withdrawn) return release(slot);
  completions_++;
}

void TcpTransport::fail(uint32_t slot, ErrorCode code, std::string message) {
  Req& r = slots_[slot];
  r.state = State::failed;
  r.code = code;
  r.error = std::move(message);
  if (r.withdrawn) return release(slot);
  completions_++;
}

void TcpTransport::fail_queue(Queue& q, ErrorCode code, const std::string& message) {
  while (!q.empty()) fail(pop(q), code, message);
}

// ---- moving bytes ----

void TcpTransport::progress() {
  for (int p = 0; p < size(); p++) {
    Peer& peer = peers_[p];
    if (p == rank_ || peer.lost) continue;
    if (!peer.sends.empty()) pump_out(p);
    // An idle peer is read too when poll saw it move: an abort frame, or the end of its stream.
    if (!peer.lost &&
        (!peer.recvs.empty() || peer.readable || peer.hung_up || peer.in_header_got > 0))
      pump_in(p);
    if (!peer.lost && peer.hung_up && parked(peer)) peer_stopped_reading(p);
    peer.readable = peer.hung_up = false;
    if (aborted_.load()) return apply_abort();
  }
}

void TcpTransport::pump_out(int p) {
  Peer& peer = peers_[p];
  while (!peer.sends.empty()) {
    Req& r = slots_[peer.sends.head];
    iovec iov[2];
    int n = 0;
    constexpr size_t kHeader = sizeof(FrameHeader);
    if (r.sent < kHeader)
      iov[n++] = {reinterpret_cast<char*>(&r.header) + r.sent, kHeader - r.sent};
    size_t payload_sent = r.sent > kHeader ? r.sent - kHeader : 0;
    if (payload_sent < r.bytes) iov[n++] = {r.data + payload_sent, r.bytes - payload_sent};
    IoResult io = write_some(peer.fd.get(), iov, n);
    if (io.error)
      return peer_lost(p, std::string("connection broken (") + std::strerror(io.error) + ")");
    r.sent += io.bytes;
    if (r.sent < kHeader + r.bytes) return;  // the socket is full: poll for POLLOUT
    complete(pop(peer.sends));
  }
}

void TcpTransport::pump_in(int p) {
  Peer& peer = peers_[p];
  constexpr size_t kHeader = sizeof(FrameHeader);
  for (;;) {
    // 1. The header, into a buffer of our own (it may arrive before its receive is posted).
    if (peer.in_header_got < kHeader) {
      IoResult io =
          read_some(peer.fd.get(), reinterpret_cast<char*>(&peer.in_header) + peer.in_header_got,
                    kHeader - peer.in_header_got);
      if (io.closed) return peer_lost(p, "connection closed");
      if (io.error)
        return peer_lost(p, std::string("connection broken (") + std::strerror(io.error) + ")");
      peer.in_header_got += io.bytes;
      if (peer.in_header_got < kHeader) return;
      peer.in_matched = false;
      peer.in_payload_got = 0;
    }
    const FrameHeader& h = peer.in_header;
    if (h.magic != kFrameMagic || (h.kind != FrameKind::data && h.kind != FrameKind::abort))
      return stream_broken(p,
                           "tcp: rank " + std::to_string(rank_) +
                               " read a frame with a bad header from rank " + std::to_string(p) +
                               "; the stream is out of sync (mixed weft versions?)",
                           ErrorCode::Corrupt);
    // 2. An abort frame: read its reason, then fail everything.
    if (h.kind == FrameKind::abort) {
      size_t want = std::min<uint64_t>(h.bytes, kMaxAbortReason);
      bool ended = false;
      while (peer.abort_reason.size() < want && !ended) {
        char buf[kMaxAbortReason];
        IoResult io = read_some(peer.fd.get(), buf, want - peer.abort_reason.size());
        peer.abort_reason.append(buf, io.bytes);
        if (io.would_block) return;
        ended = io.failed();
      }
      std::string reason = "rank " + std::to_string(p) + " aborted: " + peer.abort_reason;
      // Pass it on: ranks waiting on us learn the cause.
      return request_abort(reason, reason, decode_abort_code(h.abort_code));
    }
    // 3. A data frame waits for its receive; once posted, the header must match it.
    if (peer.recvs.empty()) return;
    uint32_t slot = peer.recvs.head;
    Req& r = slots_[slot];
    if (!peer.in_matched) {
      try {
        // A stall notice (no payload) is dropped once it no longer holds (stall_notice.h).
        if (is_stall_notice(h)) {
          judge_notice(h, r.fp, ledger_.sent(p), rank_, p, name());
          peer.in_header_got = 0;
          continue;
        }
        check_frame(h, r.fp, r.bytes, rank_, p, name());
      } catch (const Error& e) {
        return stream_broken(p, e.message(), e.code());
      }
      peer.in_matched = true;
    }
    // 4. The payload, straight into the caller's buffer.
    while (peer.in_payload_got < r.bytes) {
      IoResult io =
          read_some(peer.fd.get(), r.data + peer.in_payload_got, r.bytes - peer.in_payload_got);
      if (io.closed) return peer_lost(p, "connection closed");
      if (io.error)
        return peer_lost(p, std::string("connection broken (") + std::strerror(io.error) + ")");
      if (io.would_block) return;
      peer.in_payload_got += io.bytes;
    }
    complete(pop(peer.recvs));
    peer.in_header_got = 0;
  }
}

// ---- sleeping ----

void TcpTransport::wait_for_progress(const LazyDeadline& until) {
  {
    std::lock_guard lock(mu_);
    if (aborted_.load()) apply_abort();
    // Something completed since the caller last slept: it may be what the caller waits for.
    if (completions_ != seen_completions_) {
      seen_completions_ = completions_;
      return;
    }
    pfds_.clear();
    pfd_peer_.clear();
    pfds_.push_back({wake_.get(), POLLIN, 0});
    pfd_peer_.push_back(-1);
    for (int p = 0; p < size(); p++) {
      const Peer& peer = peers_[p];
      if (p == rank_ || peer.lost) continue;
      // Data for a receive or an idle peer's news (an abort frame, its end); but a peer whose
      // next message waits for a receive not yet posted is only watched for hanging up.
      short events = 0;
      if (!parked(peer))
        events |= POLLIN | POLLRDHUP;
      else if (!peer.send_closed)
        events |= POLLRDHUP;
      if (!peer.sends.empty()) events |= POLLOUT;
      if (events == 0) continue;  // nothing to learn; a hung-up socket would wake poll forever
      pfds_.push_back({peer.fd.get(), events, 0});
      pfd_peer_.push_back(p);
    }
  }
  int n = ::poll(pfds_.data(), pfds_.size(),
                 poll_timeout_ms(std::min(until.get(), Clock::now() + kPollCap),
                                 static_cast<int>(kPollCap.count())));
  if (n <= 0) return;
  std::lock_guard lock(mu_);
  if (pfds_[0].revents & POLLIN) {
    uint64_t v;
    ssize_t ignored = ::read(wake_.get(), &v, sizeof v);
    (void)ignored;
  }
  for (size_t i = 1; i < pfds_.size(); i++) {
    Peer& peer = peers_[pfd_peer_[i]];
    peer.readable |= (pfds_[i].revents & POLLIN) != 0;
    peer.hung_up |= (pfds_[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
}

}  // namespace weft::comm::tcp

namespace weft::comm {

std::unique_ptr<Transport> make_tcp_transport(const TransportSetup& setup) {
  if (!setup.store && setup.size > 1)
    throw Error(ErrorCode::InvalidArgument, "tcp transport set-up needs a store");
  if (setup.rank < 0 || setup.rank >= setup.size)
    throw Error(ErrorCode::InvalidArgument, "tcp transport: rank " + std::to_string(setup.rank) +
                                                " is outside a group of " +
                                                std::to_string(setup.size));
  return std::make_unique<tcp::TcpTransport>(setup, connect_mesh(setup));
}

}  // namespace weft::comm
