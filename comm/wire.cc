#include "comm/wire.h"

#include "runtime/error.h"

namespace weft::comm {

FrameHeader abort_header(uint64_t reason_bytes, ErrorCode code) {
  FrameHeader h;
  h.kind = FrameKind::abort;
  h.bytes = reason_bytes;
  h.abort_code = encode_abort_code(code);
  return h;
}

uint32_t encode_abort_code(ErrorCode code) {
  return code == ErrorCode::Aborted ? 0 : static_cast<uint32_t>(code) + 1;
}

ErrorCode decode_abort_code(uint32_t wire) {
  if (wire == 0 || wire > static_cast<uint32_t>(ErrorCode::Internal) + 1) return ErrorCode::Aborted;
  return static_cast<ErrorCode>(wire - 1);
}

Fingerprint fingerprint_of(const FrameHeader& h) {
  Fingerprint fp;
  fp.seq = h.seq;
  fp.op = static_cast<OpKind>(h.op);
  fp.dtype = static_cast<DType>(h.dtype);
  fp.reduce = static_cast<ReduceOp>(h.reduce);
  fp.exchange = (h.flags & kFrameExchange) != 0;
  fp.stalled = (h.flags & kFrameStall) != 0;
  fp.root = h.root;
  fp.count = h.count;
  return fp;
}

NoticeVerdict judge_notice(const FrameHeader& notice, const Fingerprint& want,
                           uint64_t sent_to_peer, int me, int peer, const char* transport) {
  Fingerprint theirs = fingerprint_of(notice);
  theirs.stalled = false;
  if (sent_to_peer >= theirs.seq) return NoticeVerdict::stale;
  // Sequence numbers compared in 32 bits, as the notice carries them (wrapping after 4 billion
  // messages to one peer).
  const uint32_t they_sent = notice.abort_code;
  if (want.op == OpKind::recv &&
      static_cast<int32_t>(static_cast<uint32_t>(want.seq) - they_sent) <= 0)
    return NoticeVerdict::early;
  throw Error(ErrorCode::InvalidArgument,
              std::string(transport) + ": point-to-point deadlock: rank " + std::to_string(peer) +
                  " waits in " + theirs.describe() + " for a message rank " + std::to_string(me) +
                  " has not sent, while rank " + std::to_string(me) + " waits in " +
                  want.describe() + " for rank " + std::to_string(peer) +
                  ", which has not sent it anything more: neither can go on. The k-th send of a "
                  "rank to a peer pairs with that peer's k-th recv from it, and each rank runs its "
                  "ops in call order: make every recv's message sent before its sender waits on "
                  "the receiver, or post both directions in one batch_p2p");
}

void check_frame_in_full(const FrameHeader& got, const Fingerprint& want, uint64_t want_bytes,
                         int me, int peer, const char* transport) {
  if (got.magic != kFrameMagic)
    throw Error(ErrorCode::Corrupt, std::string(transport) + ": rank " + std::to_string(me) +
                                        " read a frame with a bad magic number from rank " +
                                        std::to_string(peer) +
                                        "; the stream is out of sync (a version mismatch?)");
  Fingerprint fp = fingerprint_of(got);
  if (fp.stalled)  // a transport that carries notices judges them first (judge_notice)
    throw Error(ErrorCode::Internal, std::string(transport) + ": rank " + std::to_string(me) +
                                         " read a stall notice from rank " + std::to_string(peer) +
                                         " it cannot judge");
  // Point-to-point send/recv pair up with opposite op kinds; compare them as one.
  bool p2p = (fp.op == OpKind::send && want.op == OpKind::recv);
  Fingerprint theirs = fp;
  if (p2p) {
    theirs.op = OpKind::recv;
    theirs.root = want.root;  // sender names the receiver, receiver names the sender
  }
  if (!(theirs == want) || got.bytes != want_bytes) {
    throw Error(ErrorCode::InvalidArgument,
                "collective mismatch: rank " + std::to_string(peer) + " called " +
                    fp.describe() + " sending " + std::to_string(got.bytes) +
                    " bytes, but rank " + std::to_string(me) + " called " + want.describe() +
                    " expecting " + std::to_string(want_bytes) +
                    " bytes; every rank must call the same collectives in the same order with "
                    "the same dtype, count and root");
  }
}

}  // namespace weft::comm
