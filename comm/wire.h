#pragma once
// The frame header every byte-stream transport (tcp, shm) puts before each message.
#include <cstdint>
#include <string>
#include <vector>

#include "comm/fingerprint.h"
#include "runtime/error.h"

namespace weft::comm {

inline constexpr uint32_t kFrameMagic = 0x77656674;  // "weft"

enum class FrameKind : uint32_t { data = 1, abort = 2 };
inline constexpr uint16_t kFrameExchange = 1;  // Fingerprint::exchange
// Fingerprint::stalled: a stall notice. No payload; the header's fingerprint is the receive the
// sender waits in, and `abort_code` holds the point-to-point sends it had posted to this rank.
inline constexpr uint16_t kFrameStall = 2;

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  FrameKind kind = FrameKind::data;
  uint64_t seq = 0;
  uint32_t op = 0;
  uint8_t dtype = 0;
  uint8_t reduce = 0;
  uint16_t flags = 0;  // kFrameExchange, kFrameStall
  int32_t root = -1;
  // Abort frames: the ErrorCode the peers fail with (0: Aborted). Stall notices: the low 32
  // bits of the sender's last point-to-point send sequence number to the receiver.
  uint32_t abort_code = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;  // payload bytes after the header (the reason text for an abort frame)
};
static_assert(sizeof(FrameHeader) == 48);

// Inline, as check_frame: every message makes one.
inline FrameHeader data_header(const Fingerprint& fp, uint64_t bytes) {
  FrameHeader h;
  h.kind = FrameKind::data;
  h.seq = fp.seq;
  h.op = static_cast<uint32_t>(fp.op);
  h.dtype = static_cast<uint8_t>(fp.dtype);
  h.reduce = static_cast<uint8_t>(fp.reduce);
  h.flags =
      static_cast<uint16_t>((fp.exchange ? kFrameExchange : 0) | (fp.stalled ? kFrameStall : 0));
  h.root = fp.root;
  h.count = fp.count;
  h.bytes = bytes;
  return h;
}
FrameHeader abort_header(uint64_t reason_bytes, ErrorCode code);
// The ErrorCode an aborting rank asks its peers to fail with, as it travels (an abort frame's
// abort_code, the shm segment's): 0 is Aborted, and so is anything unknown.
uint32_t encode_abort_code(ErrorCode code);
ErrorCode decode_abort_code(uint32_t wire);
Fingerprint fingerprint_of(const FrameHeader& h);

// The last point-to-point send (Fingerprint::seq of an OpKind::send message) a transport has
// posted to each peer, and the headers it sends, which carry that number in a stall notice: what
// a rank needs to judge its peers' stall notices (judge_notice).
class SendLedger {
 public:
  explicit SendLedger(int size) : sent_(static_cast<size_t>(size), 0) {}
  // The header of a message to `peer`, noting a point-to-point send.
  FrameHeader header(const Fingerprint& fp, uint64_t bytes, int peer) {
    if (fp.op == OpKind::send) sent_[peer] = fp.seq;
    FrameHeader h = data_header(fp, bytes);
    if (fp.stalled) h.abort_code = static_cast<uint32_t>(sent_[peer]);
    return h;
  }
  uint64_t sent(int peer) const { return sent_[peer]; }

 private:
  std::vector<uint64_t> sent_;
};

inline bool is_stall_notice(const FrameHeader& h) {
  return h.kind == FrameKind::data && (h.flags & kFrameStall) != 0;
}

// Judges a stall notice from `peer` (it waits in the receive the notice describes) while this
// rank waits in `want` for a message from that peer. `sent_to_peer` is this rank's last
// point-to-point send to it (SendLedger::sent). Returns `stale` when this rank has posted the
// message the peer waits for since (drop the notice), `early` when the peer had posted the
// message `want` waits for before it stalled (it is on its way: look again later). Otherwise
// neither rank can go on, each waiting for a message the other sends only after its own wait
// ends: throws InvalidArgument naming both ranks' calls.
enum class NoticeVerdict { stale, early };
NoticeVerdict judge_notice(const FrameHeader& notice, const Fingerprint& want,
                           uint64_t sent_to_peer, int me, int peer, const char* transport);

// Checks a received data header against what this rank posted. Throws InvalidArgument naming
// both ranks' collective and size, Corrupt for a bad magic. Abort frames are handled by the
// caller before this. Inline for the frame that matches field for field, as nearly every frame
// does (a call and a Fingerprint built per message cost an 8-byte allreduce a few percent);
// the rest (a send meeting its recv, a mismatch) is check_frame_in_full's.
void check_frame_in_full(const FrameHeader& got, const Fingerprint& want, uint64_t want_bytes,
                         int me, int peer, const char* transport);
inline void check_frame(const FrameHeader& got, const Fingerprint& want, uint64_t want_bytes,
                        int me, int peer, const char* transport) {
  if (got.magic == kFrameMagic && !want.stalled &&
      got.flags == (want.exchange ? kFrameExchange : 0) && got.seq == want.seq &&
      got.op == static_cast<uint32_t>(want.op) && got.dtype == static_cast<uint8_t>(want.dtype) &&
      got.reduce == static_cast<uint8_t>(want.reduce) && got.root == want.root &&
      got.count == want.count && got.bytes == want_bytes)
    return;
  check_frame_in_full(got, want, want_bytes, me, peer, transport);
}

}  // namespace weft::comm
