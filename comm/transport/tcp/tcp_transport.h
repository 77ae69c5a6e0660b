#pragma once
// The TCP transport's class, shared by its files: transport_tcp.cc (posting, moving bytes,
// sleeping) and tcp_failures.cc (a lost peer, a broken stream, aborting and telling the peers).
// Set-up, the mesh of connections, is tcp_mesh.cc. Private to comm/transport/tcp.
#include <poll.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "comm/transport.h"
#include "comm/transport_setup.h"
#include "comm/wire.h"
#include "runtime/socket.h"

namespace weft::comm::tcp {

constexpr size_t kMaxAbortReason = 4096;
// wait_for_progress never sleeps longer than this.
constexpr std::chrono::milliseconds kPollCap{200};
// abort() spends at most this telling peers.
constexpr std::chrono::milliseconds kAbortFramePatience{100};

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
  UniqueFd wake_;  // eventfd abort() writes to wake a sleeping wait_for_progress
  std::atomic<bool> aborted_{false};
  std::mutex abort_mu_;  // guards the four fields below
  std::string abort_message_;
  std::string abort_frame_reason_;
  ErrorCode abort_code_ = ErrorCode::Aborted;
  bool abort_applied_ = false;
};

}  // namespace weft::comm::tcp
