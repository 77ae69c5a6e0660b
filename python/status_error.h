#pragma once
// A failure the Python module raises as weft.Error: the C API's status code and its message
// (weft_module.cc turns it into the exception, with the code as the instance's `code`).
#include <stdexcept>
#include <string>

#include "include/weft/weft.h"

namespace weft::python {

class StatusError : public std::runtime_error {
 public:
  StatusError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// Throws the StatusError of a C API call's result (nothing for WEFT_SUCCESS). Call it on the
// thread that made the call: the message is that thread's weft_last_error().
inline void check(int status) {
  if (status != WEFT_SUCCESS) throw StatusError(status, weft_last_error());
}

// An argument the module refuses before calling weft: InvalidArgument, like weft's own.
[[noreturn]] inline void invalid(const std::string& message) {
  throw StatusError(WEFT_ERR_INVALID_ARGUMENT, "InvalidArgument: " + message);
}

}  // namespace weft::python
