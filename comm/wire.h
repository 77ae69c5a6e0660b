#pragma once
// The frame header every byte-stream transport (tcp, shm) puts before each message.
#include <cstdint>
#include <string>

#include "comm/fingerprint.h"
#include "runtime/error.h"

namespace weft::comm {

inline constexpr uint32_t kFrameMagic = 0x77656674;  // "weft"

enum class FrameKind : uint32_t { data = 1, abort = 2 };
inline constexpr uint16_t kFrameExchange = 1;  // Fingerprint::exchange

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  FrameKind kind = FrameKind::data;
  uint64_t seq = 0;
  uint32_t op = 0;
  uint8_t dtype = 0;
  uint8_t reduce = 0;
  uint16_t flags = 0;  // kFrameExchange
  int32_t root = -1;
  uint32_t abort_code = 0;  // abort frames: the ErrorCode the peers fail with (0: Aborted)
  uint64_t count = 0;
  uint64_t bytes = 0;  // payload bytes after the header (the reason text for an abort frame)
};
static_assert(sizeof(FrameHeader) == 48);

FrameHeader data_header(const Fingerprint& fp, uint64_t bytes);
FrameHeader abort_header(uint64_t reason_bytes, ErrorCode code);
// The ErrorCode an aborting rank asks its peers to fail with, as it travels (an abort frame's
// abort_code, the shm segment's): 0 is Aborted, and so is anything unknown.
uint32_t encode_abort_code(ErrorCode code);
ErrorCode decode_abort_code(uint32_t wire);
Fingerprint fingerprint_of(const FrameHeader& h);

// Checks a received data header against what this rank posted. Throws InvalidArgument naming
// both ranks' collective and size, Corrupt for a bad magic. Abort frames are handled by the
// caller before this.
void check_frame(const FrameHeader& got, const Fingerprint& want, uint64_t want_bytes, int me,
                 int peer, const char* transport);

}  // namespace weft::comm
