#include "runtime/command_line.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>

#include "runtime/error.h"

namespace weft::cli {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean --backend?)" for a flag at most two edits from one of `app`'s, else "".
std::string suggestion_for(const CLI::App& app, std::string_view flag) {
  std::string_view name = flag.substr(0, flag.find('='));
  std::string best;
  size_t best_distance = 3;  // further than two edits away is not a typo
  for (const CLI::Option* option : app.get_options()) {
    std::vector<std::string> names;
    for (const std::string& l : option->get_lnames()) names.push_back("--" + l);
    for (const std::string& s : option->get_snames()) names.push_back("-" + s);
    for (const std::string& known : names)
      if (size_t d = edit_distance(name, known); d < best_distance) {
        best_distance = d;
        best = known;
      }
  }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

// CLI11 takes whatever follows a flag as its value: a flag there, or nothing, means the value
// was forgotten, which CLI11 would report as a strange value or not at all. An empty value
// (`--tls-ca=` or `--tls-ca "$CA"` with CA unset) is refused too: taken as "not given", it
// would quietly turn off what the flag asked for.
void check_values_present(const CLI::App& app, const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size() && args[i] != "--"; ++i) {
    const std::string& arg = args[i];
    size_t equals = arg.find('=');
    bool long_flag = arg.rfind("--", 0) == 0;
    bool short_flag = arg.size() == 2 && arg[0] == '-';
    if (!long_flag && !short_flag) continue;
    const std::string name = long_flag ? arg.substr(0, equals) : arg;
    const CLI::Option* option = app.get_option_no_throw(name);
    if (option == nullptr || option->get_expected_min() == 0) continue;  // unknown, or a switch
    if (long_flag && equals != std::string::npos) {
      if (equals + 1 == arg.size()) fail(name + " needs a value, got an empty one");
      continue;
    }
    if (i + 1 == args.size() || args[i + 1].rfind("--", 0) == 0) fail(arg + " needs a value");
    if (args[i + 1].empty()) fail(arg + " needs a value, got an empty one");
    ++i;
  }
}

// CLI11's messages start with the option's name and a colon: "--lr: 1 required TEXT missing".
std::string message_of(const CLI::ParseError& e) {
  std::string what = e.what();
  size_t colon = what.find(": ");
  if (colon == std::string::npos) return what;
  std::string flag = what.substr(0, colon), detail = what.substr(colon + 2);
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) && detail.find("missing") != detail.npos)
    return flag + " needs a value";
  return flag + " " + detail;
}

}  // namespace

bool asks_for_help(const std::vector<std::string>& args) {
  auto end = std::find(args.begin(), args.end(), "--");
  return std::find(args.begin(), end, "-h") != end || std::find(args.begin(), end, "--help") != end;
}

void parse(CLI::App& app, const std::vector<std::string>& args, const std::string& hint,
           const std::function<std::string(const std::string&)>& stray) {
  app.set_help_flag();  // each program prints its own text
  app.allow_extras();   // reported below, in weft's words
  for (CLI::Option* option : app.get_options()) {
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    option->disable_flag_override();  // "--zero1=yes" is a mistake, not a switch turned on
  }
  std::vector<std::string> reversed;  // CLI11 pops from the back
  for (auto arg = args.rbegin(); arg != args.rend(); ++arg) {
    // CLI11 reads "-n=4" as "=4"; "-n=" leaves -n without its value, as "-n" does.
    bool short_with_equals =
        arg->size() > 2 && (*arg)[0] == '-' && (*arg)[1] != '-' && (*arg)[2] == '=';
    reversed.push_back(short_with_equals ? arg->substr(0, 2) + arg->substr(3) : *arg);
  }
  check_values_present(app, {reversed.rbegin(), reversed.rend()});
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (size_t override_at = what.find(" was given a disallowed flag override");
        override_at != std::string::npos)
      fail("--" + what.substr(0, override_at) + " takes no value");  // CLI11 drops the dashes
    fail(message_of(e));
  }
  std::vector<std::string> extras = app.remaining();
  if (extras.empty()) return;
  const std::string& first = extras.front();
  if (first.size() > 1 && first[0] == '-')
    fail("unknown flag '" + first + "'" + suggestion_for(app, first) + hint);
  fail(stray ? stray(first)
             : "unexpected argument '" + first + "' (every option is a --flag)" + hint);
}

CLI::Validator whole_number(long long min, unsigned long long max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        // Read unsigned unless negative, so that a uint64_t flag (--seed) takes all its values.
        bool negative = !text.empty() && text[0] == '-';
        long long below_zero = 0;
        unsigned long long value = 0;
        const char* last = text.data() + text.size();
        auto [end, ec] = negative ? std::from_chars(text.data(), last, below_zero)
                                  : std::from_chars(text.data(), last, value);
        if (text.empty() || ec != std::errc() || end != last)
          return "expects a whole number, got '" + text + "'";
        if (negative ? below_zero < min : min > 0 && value < static_cast<unsigned long long>(min))
          return "must be at least " + std::to_string(min) + ", got " + text;
        if (!negative && value > max)
          return "must be at most " + std::to_string(max) + ", got " + text;
        text = negative ? std::to_string(below_zero) : std::to_string(value);  // not "010", octal
        return "";                                                             // to CLI11
      },
      "INT");
}

CLI::Validator finite_number(double min) {
  return CLI::Validator(
      [min](std::string& text) -> std::string {
        double value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size())
          return "expects a number, got '" + text + "'";
        if (!std::isfinite(value)) return "must be a finite number, got " + text;
        if (value < min)
          return (min == 0 ? "must not be negative" : "must be at least " + std::to_string(min)) +
                 ", got " + text;
        return "";
      },
      "NUMBER");
}

CLI::Validator one_of(std::vector<std::string> allowed) {
  return CLI::Validator(
      [allowed = std::move(allowed)](std::string& text) -> std::string {
        if (std::find(allowed.begin(), allowed.end(), text) != allowed.end()) return "";
        std::string list;
        for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return "'" + text + "' is not one of: " + list;
      },
      "CHOICE");
}

}  // namespace weft::cli
