#include "runtime/backend_names.h"

#include <algorithm>

namespace weft {

bool is_backend_name(std::string_view name) {
  constexpr auto names = backend_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string backend_names_text() {
  constexpr auto names = backend_names();
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += i + 1 == names.size() ? " or " : ", ";
    text += names[i];
  }
  return text;
}

}  // namespace weft
