#pragma once
// Command-line flags of the benchmark programs. A mistake on the command line is a UsageError:
// main() prints it with the usage text and exits 2, so a typo never runs a half-configured
// benchmark.
#include <cstddef>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace weft::bench {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What every benchmark's main() does first: `parse(argc, argv, options)` returns false after
// printing --help. Returns the exit status to leave with (0 after --help, 2 after a mistake,
// printed with a pointer to --help), or nothing when the benchmark should run.
template <typename Options, typename Parse>
std::optional<int> parse_command_line(const char* program, int argc, char** argv,
                                      Options* options, Parse parse) {
  try {
    if (!parse(argc, argv, options)) return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n(run %s --help for every flag)\n", program, e.what(), program);
    return 2;
  }
  return std::nullopt;
}

// "--name VALUE", "--name=VALUE" and "--switch" flags, each bound to a variable that holds its
// default until parse() overwrites it. Parsed by CLI11 with weft's conventions
// (runtime/command_line.h); CLI11 stays out of this header, which nvcc compiles too (nvcc has
// looped forever on CLI11's header in C++20).
class FlagParser {
 public:
  explicit FlagParser(std::string program_summary);
  ~FlagParser();

  void add_value(std::string name, std::string value_name, std::string help, std::string* out);
  void add_switch(std::string name, std::string help, bool* out);

  // Throws UsageError naming the flag for an unknown flag (with the nearest valid one), a
  // missing value, or a positional argument. "--help" sets *help_requested instead of failing.
  void parse(int argc, char** argv, bool* help_requested);
  std::string usage() const;

 private:
  struct Flags;
  std::unique_ptr<Flags> flags_;
};

// Value parsers: each throws UsageError naming `flag` and saying what would be valid.

// "8,1K,64M" -> bytes (K/M/G are powers of 1024; runtime/env.h's parse_bytes).
std::vector<size_t> parse_size_list(const std::string& text, const std::string& flag);
// A positive integer; an empty text returns `fallback`.
size_t parse_count(const std::string& text, const std::string& flag, size_t fallback);
// One of `valid`.
std::string parse_choice(const std::string& text, const std::string& flag,
                         const std::vector<std::string>& valid);
// A comma list, each item one of `valid`; duplicates are dropped, order kept.
std::vector<std::string> parse_choice_list(const std::string& text, const std::string& flag,
                                           const std::vector<std::string>& valid);

}  // namespace weft::bench
