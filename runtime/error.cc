#include "runtime/error.h"

#include <cerrno>
#include <cstring>

namespace weft {

const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidArgument: return "InvalidArgument";
    case ErrorCode::Timeout: return "Timeout";
    case ErrorCode::PeerLost: return "PeerLost";
    case ErrorCode::Aborted: return "Aborted";
    case ErrorCode::Corrupt: return "Corrupt";
    case ErrorCode::Io: return "Io";
    case ErrorCode::Unavailable: return "Unavailable";
    case ErrorCode::Internal: return "Internal";
  }
  return "?";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(std::string(error_code_name(code)) + ": " + message),
      code_(code),
      message_(message) {}

void throw_errno(const std::string& what) {
  int e = errno;
  throw Error(ErrorCode::Io, what + ": " + std::strerror(e));
}

}  // namespace weft
