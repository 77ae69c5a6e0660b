#include "bench/bench_flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "runtime/command_line.h"
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

struct FlagParser::Flags {
  explicit Flags(std::string summary) : app(std::move(summary)) {}
  CLI::App app;
  std::vector<const std::string*> values;  // per flag in order, its variable (nullptr: a switch)
};

FlagParser::FlagParser(std::string program_summary)
    : flags_(std::make_unique<Flags>(std::move(program_summary))) {}

FlagParser::~FlagParser() = default;

void FlagParser::add_value(std::string name, std::string value_name, std::string help,
                           std::string* out) {
  flags_->app.add_option("--" + name, *out, std::move(help))->type_name(std::move(value_name));
  flags_->values.push_back(out);
}

void FlagParser::add_switch(std::string name, std::string help, bool* out) {
  flags_->app.add_flag("--" + name, *out, std::move(help));
  flags_->values.push_back(nullptr);
}

void FlagParser::parse(int argc, char** argv, bool* help_requested) {
  std::vector<std::string> args(argv + 1, argv + argc);
  *help_requested = cli::asks_for_help(args);
  if (*help_requested) return;
  try {
    cli::parse(flags_->app, args);
  } catch (const Error& e) {
    throw UsageError(e.message());
  }
}

std::string FlagParser::usage() const {
  std::ostringstream out;
  out << flags_->app.get_description() << "\n\nflags:\n";
  size_t i = 0;
  for (const CLI::Option* f : flags_->app.get_options()) {
    if (f == flags_->app.get_help_ptr()) continue;
    const std::string* value = flags_->values[i++];
    std::string head = "  " + f->get_name() + (value ? " " + f->get_type_name() : "");
    out << head << std::string(head.size() < 26 ? 26 - head.size() : 1, ' ')
        << f->get_description();
    if (value && !value->empty()) out << " (default " << *value << ")";
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
