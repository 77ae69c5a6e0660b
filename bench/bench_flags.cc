#include "bench/bench_flags.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::bench {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) items.push_back(item);
  return items;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

FlagParser::FlagParser(std::string program_summary) : summary_(std::move(program_summary)) {}

void FlagParser::add_value(std::string name, std::string value_name, std::string help,
                           std::string* out) {
  flags_.push_back({std::move(name), std::move(value_name), std::move(help), out, nullptr});
}

void FlagParser::add_switch(std::string name, std::string help, bool* out) {
  flags_.push_back({std::move(name), "", std::move(help), nullptr, out});
}

const FlagParser::Flag* FlagParser::find(const std::string& name) const {
  for (const Flag& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

void FlagParser::parse(int argc, char** argv, bool* help_requested) {
  *help_requested = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help_requested = true;
      return;
    }
    if (arg.rfind("--", 0) != 0)
      throw UsageError("unexpected argument '" + arg + "' (every option is a --flag)");
    std::string name = arg.substr(2);
    std::string inline_value;
    bool has_inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline_value = true;
    }
    const Flag* flag = find(name);
    if (!flag) {
      std::vector<std::string> names;
      for (const Flag& f : flags_) names.push_back("--" + f.name);
      throw UsageError("unknown flag '--" + name + "'; valid flags: " + join(names));
    }
    if (flag->on) {
      if (has_inline_value) throw UsageError("flag --" + name + " takes no value");
      *flag->on = true;
      continue;
    }
    if (has_inline_value) {
      *flag->value = inline_value;
    } else if (i + 1 < argc) {
      *flag->value = argv[++i];
    } else {
      throw UsageError("flag --" + name + " needs a value: --" + name + " " + flag->value_name);
    }
  }
}

std::string FlagParser::usage() const {
  std::ostringstream out;
  out << summary_ << "\n\nflags:\n";
  for (const Flag& f : flags_) {
    std::string head = "  --" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    out << head << std::string(head.size() < 26 ? 26 - head.size() : 1, ' ') << f.help;
    if (f.value && !f.value->empty()) out << " (default " << *f.value << ")";
    out << "\n";
  }
  return out.str();
}

std::vector<size_t> parse_size_list(const std::string& text, const std::string& flag) {
  std::vector<size_t> sizes;
  for (const std::string& item : split_commas(text)) {
    try {
      sizes.push_back(env::parse_bytes(item, ("--" + flag).c_str()));
    } catch (const Error&) {
      throw UsageError("--" + flag + " '" + item + "' is not a size (use e.g. 8, 1K, 64M, 1G)");
    }
  }
  if (sizes.empty())
    throw UsageError("--" + flag + " needs at least one size, e.g. --" + flag + " 8,1K,64M");
  return sizes;
}

size_t parse_count(const std::string& text, const std::string& flag, size_t fallback) {
  if (text.empty()) return fallback;
  char* end = nullptr;
  long long n = std::strtoll(text.c_str(), &end, 10);
  if (*end != '\0' || n <= 0)
    throw UsageError("--" + flag + " '" + text + "' is not a positive integer");
  return static_cast<size_t>(n);
}

std::string parse_choice(const std::string& text, const std::string& flag,
                         const std::vector<std::string>& valid) {
  if (std::find(valid.begin(), valid.end(), text) == valid.end())
    throw UsageError("--" + flag + " '" + text + "' is not valid; choose one of: " + join(valid));
  return text;
}

std::vector<std::string> parse_choice_list(const std::string& text, const std::string& flag,
                                           const std::vector<std::string>& valid) {
  std::vector<std::string> chosen;
  for (const std::string& item : split_commas(text)) {
    std::string c = parse_choice(item, flag, valid);
    if (std::find(chosen.begin(), chosen.end(), c) == chosen.end()) chosen.push_back(c);
  }
  if (chosen.empty()) throw UsageError("--" + flag + " needs at least one of: " + join(valid));
  return chosen;
}

}  // namespace weft::bench
