#pragma once
// weft::Error: the one exception type weft throws. The message names the rank, the operation
// and what to do; the code lets callers branch without parsing text.
#include <stdexcept>
#include <string>

namespace weft {

enum class ErrorCode { InvalidArgument, Timeout, PeerLost, Aborted, Corrupt, Io, Unavailable, Internal };
const char* error_code_name(ErrorCode c);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const { return code_; }
  // The message without the code's name that what() starts with, for passing an error on
  // (to a peer, or wrapped in another) without naming its code twice.
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

// Throws Error(Io) with strerror(errno) appended: for failed system calls.
[[noreturn]] void throw_errno(const std::string& what);

}  // namespace weft
