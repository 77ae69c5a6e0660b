#include "runtime/slurm_step.h"

#include <charconv>
#include <cstdint>

#include "runtime/error.h"

namespace weft::slurm {
namespace {

constexpr size_t kMaxHosts = 1'000'000;  // a typo like node[1-999999999] is not a cluster

[[noreturn]] void malformed(const char* variable, std::string_view list, const std::string& why) {
  throw Error(ErrorCode::InvalidArgument, std::string(variable) + "='" + std::string(list) +
                                              "' is not a Slurm host list: " + why +
                                              " (expected a form like node[01-04,07],gpu3)");
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

uint64_t to_number(std::string_view s) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) return UINT64_MAX;
  return n;
}

// "a,b,,c" -> a b "" c: the comma-separated parts of Slurm's lists, empty ones kept so that the
// callers name them as malformed.
std::vector<std::string_view> comma_parts(std::string_view list) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t comma = list.find(',', start);
    parts.push_back(list.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (comma == std::string_view::npos) return parts;
    start = comma + 1;
  }
}

// "01-04,07" -> 01 02 03 04 07.
std::vector<std::string> expand_ranges(std::string_view inside, std::string_view list,
                                       const char* variable) {
  std::vector<std::string> out;
  for (std::string_view part : comma_parts(inside)) {
    size_t dash = part.find('-');
    std::string_view lo = part.substr(0, dash);
    std::string_view hi = dash == std::string_view::npos ? lo : part.substr(dash + 1);
    if (!all_digits(lo) || !all_digits(hi))
      malformed(variable, list,
                "'[" + std::string(inside) + "]' holds '" + std::string(part) +
                    "', not a number or a range of numbers");
    uint64_t a = to_number(lo), b = to_number(hi);
    if (a > b || b - a >= kMaxHosts)
      malformed(variable, list, "the range '" + std::string(part) + "' is empty or too long");
    for (uint64_t n = a; n <= b; ++n) {
      std::string digits = std::to_string(n);
      if (digits.size() < lo.size()) digits.insert(0, lo.size() - digits.size(), '0');
      out.push_back(std::move(digits));
    }
  }
  return out;
}

// One name of the list, with any number of bracket groups.
void expand_name(std::string_view name, std::string_view list, const char* variable,
                 std::vector<std::string>& out) {
  std::vector<std::string> names = {""};
  size_t i = 0;
  while (i < name.size()) {
    size_t open = name.find('[', i);
    std::string_view text = name.substr(i, open == std::string_view::npos ? open : open - i);
    if (text.find(']') != std::string_view::npos) malformed(variable, list, "a ']' without '['");
    for (std::string& n : names) n += text;
    if (open == std::string_view::npos) break;
    size_t close = name.find(']', open);
    if (close == std::string_view::npos) malformed(variable, list, "a '[' without ']'");
    std::vector<std::string> numbers =
        expand_ranges(name.substr(open + 1, close - open - 1), list, variable);
    std::vector<std::string> grown;
    if (names.size() * numbers.size() > kMaxHosts) malformed(variable, list, "too many hosts");
    for (const std::string& n : names)
      for (const std::string& number : numbers) grown.push_back(n + number);
    names = std::move(grown);
    i = close + 1;
  }
  if (names.size() == 1 && names[0].empty()) malformed(variable, list, "an empty host name");
  for (std::string& n : names) out.push_back(std::move(n));
}

}  // namespace

std::vector<std::string> expand_nodelist(std::string_view list, const char* variable) {
  std::vector<std::string> hosts;
  // Names are separated by the commas outside brackets.
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    if (i < list.size() && list[i] == '[') ++depth;
    if (i < list.size() && list[i] == ']') --depth;
    if (depth < 0 || depth > 1) malformed(variable, list, "unbalanced brackets");
    if (i < list.size() && !(list[i] == ',' && depth == 0)) continue;
    expand_name(list.substr(start, i - start), list, variable, hosts);
    start = i + 1;
  }
  if (depth != 0) malformed(variable, list, "a '[' without ']'");
  return hosts;
}

int tasks_on_node(std::string_view tasks_per_node, int node, const char* variable) {
  auto bad = [&](const std::string& why) -> Error {
    return Error(ErrorCode::InvalidArgument, std::string(variable) + "='" +
                                                 std::string(tasks_per_node) + "' " + why +
                                                 " (expected a form like 2(x3),1)");
  };
  int64_t seen = 0;  // nodes counted so far
  for (std::string_view part : comma_parts(tasks_per_node)) {
    size_t paren = part.find("(x");
    std::string_view count = part.substr(0, paren);
    std::string_view times = "1";
    if (paren != std::string_view::npos) {
      if (part.back() != ')') throw bad("has '" + std::string(part) + "' without its ')'");
      times = part.substr(paren + 2, part.size() - paren - 3);
    }
    if (!all_digits(count) || !all_digits(times) || to_number(count) > 1'000'000 ||
        to_number(times) > 1'000'000)
      throw bad("has '" + std::string(part) + "', not a count of tasks");
    seen += static_cast<int64_t>(to_number(times));
    if (node < seen) return static_cast<int>(to_number(count));
  }
  throw bad("lists " + std::to_string(seen) + " nodes, not node " + std::to_string(node));
}

int step_port(std::string_view job_id, std::string_view step_id) {
  uint64_t job = all_digits(job_id) ? to_number(job_id) : 0;
  uint64_t step = all_digits(step_id) ? to_number(step_id) : 0;
  if (job == UINT64_MAX) job = 0;
  if (step == UINT64_MAX) step = 0;
  return 15000 + static_cast<int>((job % 1'000'000 * 16 + step % 16) % 16000);
}

}  // namespace weft::slurm
