#pragma once
// The launcher tests' view of a command line weftrun refuses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "launcher/launch_options.h"
#include "runtime/error.h"

namespace weft::launcher {

// The message of the InvalidArgument that parsing `args` throws ("" if it does not throw).
inline std::string error_of(const std::vector<std::string>& args) {
  try {
    parse_launch_options(args);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "parsing did not fail";
  return "";
}

}  // namespace weft::launcher
