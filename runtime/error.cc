#include "runtime/error.h"

#include <cerrno>
#include <cstring>
#include <string_view>

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

std::string strip_code_prefix(const Error& e) {
  std::string_view text = e.what();
  std::string_view code = error_code_name(e.code());
  if (text.starts_with(code) && text.substr(code.size()).starts_with(": "))
    text.remove_prefix(code.size() + 2);
  return std::string(text);
}

void throw_errno(const std::string& what) {
  int e = errno;
  throw Error(ErrorCode::Io, what + ": " + std::strerror(e));
}

}  // namespace weft
