// The TCP transport's failures: a peer lost (its connection closed or broke), a peer that
// stopped reading, a stream that no longer fits what was posted, and aborting the transport,
// which fails every request and tells each peer why in an abort frame.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "comm/transport/tcp/tcp_transport.h"
#include "runtime/error.h"

namespace weft::comm::tcp {

using namespace std::chrono_literals;

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

}  // namespace weft::comm::tcp
