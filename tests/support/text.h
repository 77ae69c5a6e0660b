#pragma once
// Text checks the tests share.
#include <string>

namespace weft::testing {

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace weft::testing
