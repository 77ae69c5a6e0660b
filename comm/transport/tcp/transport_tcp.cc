// TCP transport: one full-duplex connection per pair of ranks; non-blocking sockets driven by
// whichever thread polls the transport (the communicator's progress engine). Set-up, the mesh
// of connections and the hello that proves each belongs to the job, is tcp_mesh.cc.
//
// Data: each message is a FrameHeader followed by its payload. Per peer, sends and receives are
// FIFO queues of request slots of which only the head moves; a receive reads the header first,
// checks it against what was posted, then reads the payload straight into the caller's buffer.
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
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/socket.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;

constexpr size_t kMaxAbortReason = 4096;
constexpr auto kPollCap = 200ms;             // wait_for_progress never sleeps longer than this
constexpr auto kAbortFramePatience = 100ms;  // abort() spends at most this telling peers

constexpr uint32_t kNone = UINT32_MAX;

class TcpTransport final : public Transport {
 public:
  TcpTransport(const TransportSetup& s, std::vector<UniqueFd> fds);
  ~TcpTransport() override;

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(peers_.size()); }
  const char* name() const override { return "tcp"; }
  bool carries_stall_notices() const override { return true; }
  Request isend(int peer, const void* data, size_t bytes, const Fingerprint& fp) override;
  Request irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) override;
  bool test(Request r) override;
  void withdraw_notice(Request r) override;
  void wait_for_progress(const LazyDeadline& until) override;
  void abort(const std::string& reason) override { abort_with(ErrorCode::Aborted, reason); }
  void abort_with(ErrorCode code, const std::string& reason) override;

 private:
  enum class State : uint8_t { free, queued, done, failed };
  struct Req {
    uint32_t generation = 0;  // bumped on reuse, so a stale id is caught
    State state = State::free;
    bool is_send = false;
    int peer = 0;
    char* data = nullptr;
    size_t bytes = 0;
    Fingerprint fp;
    FrameHeader header;     // sends: the header to write
    size_t sent = 0;        // sends: header + payload bytes written so far
    uint32_t next = kNone;  // next request in the peer's queue
    ErrorCode code = ErrorCode::Internal;
    std::string error;
    bool withdrawn = false;  // a stall notice nobody tests: freed once written (withdraw_notice)
  };
  struct Queue {  // FIFO threaded through Req::next: pushing and popping never allocate
    uint32_t head = kNone, tail = kNone;
    bool empty() const { return head == kNone; }
  };
  struct Peer {
    UniqueFd fd;
    Queue sends, recvs;
    FrameHeader in_header;  // the header of the message now arriving
    size_t in_header_got = 0;
    bool in_matched = false;  // in_header was checked against the head receive
    size_t in_payload_got = 0;
    std::string abort_reason;  // payload of an abort frame being read
    bool readable = false;     // poll saw data (or the end of the stream) to read
    bool hung_up = false;      // poll saw the peer close its side
    bool send_closed = false;  // the peer stopped reading: sends to it fail
    bool lost = false;
    std::string lost_why;
  };

  uint32_t post(bool is_send, int peer, char* data, size_t bytes, const Fingerprint& fp);
  void push(Queue& q, uint32_t slot);
  uint32_t pop(Queue& q);
  void unlink(Queue& q, uint32_t slot);
  void release(uint32_t slot);
  uint32_t slot_of(Request r) const;
  void progress();
  void pump_out(int p);
  void pump_in(int p);
  bool parked(const Peer& peer) const {  // a whole data header waits for a receive
    return peer.in_header_got == sizeof(FrameHeader) && peer.in_header.kind == FrameKind::data &&
           peer.recvs.empty();
  }
  void complete(uint32_t slot);
  void fail(uint32_t slot, ErrorCode code, std::string message);
  void fail_queue(Queue& q, ErrorCode code, const std::string& message);
  std::string lost_message(const Req& r) const;
  void peer_lost(int p, const std::string& why);
  void peer_stopped_reading(int p);
  void stream_broken(int p, const std::string& message, ErrorCode code);
  // Records the first failure of the whole transport; `frame_reason` (empty: none) is what peers
  // are told, `code` what every request here and there fails with. Callable from any thread.
  void request_abort(const std::string& message, const std::string& frame_reason, ErrorCode code);
  void apply_abort();  // with mu_ held: fail everything, tell the peers once
  void send_abort_frames(const std::string& reason, ErrorCode code,
                         const std::vector<bool>& mid_message);

  const int rank_;
  std::vector<Peer> peers_;
  SendLedger ledger_;  // what stall notices from the peers are judged by
  std::vector<Req> slots_;
  std::vector<uint32_t> free_;
  uint64_t completions_ = 0;       // requests completed or failed so far
  uint64_t seen_completions_ = 0;  // ... when wait_for_progress last looked
  std::vector<pollfd> pfds_;
  std::vector<int> pfd_peer_;

  std::mutex mu_;  // every verb holds it; abort() from another thread waits briefly
  UniqueFd wake_;        // eventfd abort() writes to wake a sleeping wait_for_progress
  std::atomic<bool> aborted_{false};
  std::mutex abort_mu_;  // guards the four fields below
  std::string abort_message_;
  std::string abort_frame_reason_;
  ErrorCode abort_code_ = ErrorCode::Aborted;
  bool abort_applied_ = false;
};

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

// ---- failures ----

std::string TcpTransport::lost_message(const Req& r) const {
  const Peer& p = peers_[r.peer];
  return "rank " + std::to_string(r.peer) + " lost: " + p.lost_why + " while rank " +
         std::to_string(rank_) + " was " + (r.is_send ? "sending " : "receiving ") +
         r.fp.describe() + "; the process probably died, check rank " + std::to_string(r.peer) +
         "'s output";
}

void TcpTransport::peer_lost(int p, const std::string& why) {
  Peer& peer = peers_[p];
  peer.lost = true;
  peer.lost_why = why;
  peer.fd.reset();
  for (Queue* q : {&peer.sends, &peer.recvs})
    while (!q->empty()) {
      uint32_t slot = pop(*q);
      fail(slot, ErrorCode::PeerLost, lost_message(slots_[slot]));
    }
}

// The peer closed its end while data for a receive not yet posted is still buffered here: keep
// that data readable, but the peer will never read what this rank sends.
void TcpTransport::peer_stopped_reading(int p) {
  Peer& peer = peers_[p];
  peer.send_closed = true;
  peer.lost_why = "connection closed";
  while (!peer.sends.empty()) {
    uint32_t slot = pop(peer.sends);
    fail(slot, ErrorCode::PeerLost, lost_message(slots_[slot]));
  }
}

// A header that does not fit what was posted: the stream cannot be trusted any more, so this
// receive fails with the reason and the whole transport aborts, telling the peers why.
void TcpTransport::stream_broken(int p, const std::string& message, ErrorCode code) {
  Peer& peer = peers_[p];
  if (!peer.recvs.empty()) fail(pop(peer.recvs), code, message);
  request_abort("rank " + std::to_string(rank_) + " aborted the tcp transport: " + message, message,
                code);
}

void TcpTransport::request_abort(const std::string& message, const std::string& frame_reason,
                                 ErrorCode code) {
  {
    std::lock_guard lock(abort_mu_);
    if (aborted_.load()) return;  // the first failure is the one everybody reports
    abort_message_ = message;
    abort_frame_reason_ = frame_reason;
    abort_code_ = code;
    aborted_.store(true);
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_.get(), &one, sizeof one);
  (void)ignored;
}

void TcpTransport::abort_with(ErrorCode code, const std::string& reason) {
  request_abort(reason, reason, code);
  // Tell the peers now unless another thread is mid-verb; then that thread does it when it
  // next looks (it checks the flag first thing in every verb and after each peer).
  // Verbs hold the lock only for non-blocking passes, so it comes free within microseconds
  // unless that thread is itself telling the peers. (A plain mutex tried in a short loop, not a
  // timed one: sanitizers understand it.)
  Deadline until = Clock::now() + kAbortFramePatience;
  for (;;) {
    std::unique_lock lock(mu_, std::try_to_lock);
    if (lock.owns_lock()) return apply_abort();
    if (Clock::now() >= until) return;
    std::this_thread::sleep_for(200us);
  }
}

void TcpTransport::apply_abort() {
  std::string message, frame_reason;
  ErrorCode code;
  {
    std::lock_guard lock(abort_mu_);
    if (abort_applied_) return;
    abort_applied_ = true;
    message = abort_message_;
    frame_reason = abort_frame_reason_;
    code = abort_code_;
  }
  // A send cut off mid-message leaves the peer's stream where no frame can start.
  std::vector<bool> mid_message(peers_.size(), false);
  for (size_t p = 0; p < peers_.size(); p++) {
    Peer& peer = peers_[p];
    mid_message[p] = !peer.sends.empty() && slots_[peer.sends.head].sent > 0;
    fail_queue(peer.sends, code, message);
    fail_queue(peer.recvs, code, message);
  }
  if (!frame_reason.empty()) send_abort_frames(frame_reason, code, mid_message);
}

// Best effort, bounded: an abort frame to every peer whose stream is between messages, then the
// end of stream to all (a peer that is not reading this rank's data then sees it hang up).
void TcpTransport::send_abort_frames(const std::string& reason, ErrorCode code,
                                     const std::vector<bool>& mid_message) {
  std::string frame(sizeof(FrameHeader), '\0');
  std::string text = reason.substr(0, kMaxAbortReason);
  FrameHeader h = abort_header(text.size(), code);
  std::memcpy(frame.data(), &h, sizeof h);
  frame += text;
  Deadline until = Clock::now() + kAbortFramePatience;
  for (int p = 0; p < size(); p++) {
    Peer& peer = peers_[p];
    if (p == rank_ || peer.lost || !peer.fd) continue;
    if (!mid_message[p]) {
      try {
        write_exact(peer.fd.get(), frame.data(), frame.size(), until, "abort frame");
      } catch (const Error&) {
      }
    }
    ::shutdown(peer.fd.get(), SHUT_WR);
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

}  // namespace

std::unique_ptr<Transport> make_tcp_transport(const TransportSetup& setup) {
  if (!setup.store && setup.size > 1)
    throw Error(ErrorCode::InvalidArgument, "tcp transport set-up needs a store");
  if (setup.rank < 0 || setup.rank >= setup.size)
    throw Error(ErrorCode::InvalidArgument, "tcp transport: rank " + std::to_string(setup.rank) +
                                                " is outside a group of " +
                                                std::to_string(setup.size));
  return std::make_unique<TcpTransport>(setup, connect_mesh(setup));
}

}  // namespace weft::comm
