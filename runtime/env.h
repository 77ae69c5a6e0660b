#pragma once
// The one registry of tunable environment variables: name, default and meaning.
// weftrun --help-env prints it; README's table is written from it by hand.
#include <chrono>
#include <optional>
#include <span>
#include <string>

namespace weft::env {

struct Var {
  const char* name;
  const char* default_value;
  const char* meaning;
};

std::span<const Var> all();

// Value of a registered variable, or its default. Throws Internal for an unregistered name.
std::string get(const char* name);
// Parsed forms; a malformed value is an InvalidArgument naming the variable.
double get_double(const char* name);
long long get_int(const char* name);
// Parses "64M", "1K", "8" into bytes.
size_t parse_bytes(const std::string& text, const char* what);
// WEFT_TIMEOUT as a duration.
std::chrono::milliseconds timeout();
// WEFT_HEARTBEAT_TIMEOUT as a duration (zero: no deadline).
std::chrono::milliseconds heartbeat_timeout();

}  // namespace weft::env
