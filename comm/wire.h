#pragma once
// The frame header every byte-stream transport (tcp, shm) puts before each message.
#include <cstdint>
#include <string>

#include "comm/fingerprint.h"

namespace weft::comm {

inline constexpr uint32_t kFrameMagic = 0x77656674;  // "weft"

enum class FrameKind : uint32_t { data = 1, abort = 2 };

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  FrameKind kind = FrameKind::data;
  uint64_t seq = 0;
  uint32_t op = 0;
  uint8_t dtype = 0;
  uint8_t reduce = 0;
  uint16_t reserved = 0;
  int32_t root = -1;
  uint32_t reserved2 = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;  // payload bytes after the header (the reason text for an abort frame)
};
static_assert(sizeof(FrameHeader) == 48);

FrameHeader data_header(const Fingerprint& fp, uint64_t bytes);
FrameHeader abort_header(uint64_t reason_bytes);
Fingerprint fingerprint_of(const FrameHeader& h);

// Checks a received data header against what this rank posted. Throws InvalidArgument naming
// both ranks' collective and size, Corrupt for a bad magic. Abort frames are handled by the
// caller before this.
void check_frame(const FrameHeader& got, const Fingerprint& want, uint64_t want_bytes, int me,
                 int peer, const char* transport);

}  // namespace weft::comm
