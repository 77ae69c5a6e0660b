#include "launcher/line_prefixer.h"

namespace weft::launcher {

void LinePrefixer::emit(std::string_view line, std::string& out) const {
  out.append(prefix_);
  out.append(line);
  out.push_back('\n');
}

void LinePrefixer::feed(std::string_view bytes, std::string& out) {
  while (!bytes.empty()) {
    size_t newline = bytes.find('\n');
    if (newline == std::string_view::npos) {
      partial_.append(bytes);
      if (partial_.size() >= kMaxLineBytes) {
        emit(partial_, out);
        partial_.clear();
      }
      return;
    }
    if (partial_.empty()) {
      emit(bytes.substr(0, newline), out);  // the common case: no copy into partial_
    } else {
      partial_.append(bytes.substr(0, newline));
      emit(partial_, out);
      partial_.clear();
    }
    bytes.remove_prefix(newline + 1);
  }
}

void LinePrefixer::finish(std::string& out) {
  if (partial_.empty()) return;
  emit(partial_, out);
  partial_.clear();
}

std::string rank_prefix(int rank, bool tag_output) {
  return tag_output ? "[rank " + std::to_string(rank) + "] " : std::string();
}

}  // namespace weft::launcher
