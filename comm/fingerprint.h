#pragma once
// Fingerprint: what a message says about the collective it belongs to. Every message carries
// one; the receiver compares it with its own, so ranks that disagree on the op, dtype, count or
// root fail with InvalidArgument naming both sides instead of exchanging garbage or hanging.
#include <cstdint>
#include <string>

#include "runtime/dtype.h"

namespace weft::comm {

enum class OpKind : uint8_t {
  allreduce = 1,
  broadcast,
  reduce,
  allgather,
  reduce_scatter,
  alltoall,
  send,
  recv,
  barrier,
  split,
  setup,
  // Several sends and receives as one op (Communicator::batch_p2p): names the op in the Work's
  // messages; each of its messages carries its own send or recv fingerprint.
  batch_p2p
};
const char* op_kind_name(OpKind k);

struct Fingerprint {
  uint64_t seq = 0;  // collective sequence number on this communicator
  OpKind op = OpKind::setup;
  DType dtype = DType::u8;
  ReduceOp reduce = ReduceOp::sum;
  int32_t root = -1;   // root rank (broadcast, reduce) or peer (send/recv); -1 when none
  uint64_t count = 0;  // elements per rank, as the caller passed them
  // The messages of the fingerprint exchange that runs before op #seq (exchange_fingerprints):
  // their header names only the op and its number, their payload the ranks' full fingerprints.
  bool exchange = false;
  // A stall notice (comm/stall_notice.h): not a message of the op but the sender saying it has
  // waited a while in this receive. Travels in a header of its own (wire.h: kFrameStall).
  bool stalled = false;

  bool operator==(const Fingerprint&) const = default;
  std::string describe() const;  // "allreduce #7 (f32 x 1000, sum)"
};

// A fingerprint as four integers, the same on every rank (no padding bytes): what ranks send
// each other when they compare whole fingerprints (the native backends' agreement check,
// exchange_fingerprints).
struct WireFingerprint {
  uint64_t seq, kinds, root, count;
  bool operator==(const WireFingerprint&) const = default;
};
WireFingerprint encode(const Fingerprint& fp);
Fingerprint decode(const WireFingerprint& w);

}  // namespace weft::comm
