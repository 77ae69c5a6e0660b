#pragma once
// weft's conventions for a program's flags, over CLI11 (Debian's libcli11-dev), shared by
// weftrun, weft-coordinator, weft-train and the benchmarks (through bench/bench_flags.h). A
// program declares its flags on a CLI::App named after it and calls parse(); every mistake is
// an Error(InvalidArgument) whose message names the flag and says what would be accepted, which
// main() prints before exiting 2. Help is each program's own text: -h and --help win over every
// other mistake on the line. Not for a .cu file: nvcc has looped forever on CLI11 in C++20.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace weft::cli {

// Whether `args` hold -h or --help before any "--" (after it they are the program's).
bool asks_for_help(const std::vector<std::string>& args);

// Parses `args` (argv after argv[0]) into `app`: "--flag VALUE", "--flag=VALUE", "-fVALUE",
// switches; the last of a repeated flag wins. Throws Error(InvalidArgument) for a flag without
// its value ("--lr needs a value": also when the next argument is another --flag), a switch
// given one, a value a check refused ("--steps must be at least 1, got 0"), an unknown flag (with
// the nearest known one when it looks like a typo) or an argument that no flag takes (`stray`
// words that message); the last two end with `hint`, e.g. where the flags are listed.
void parse(CLI::App& app, const std::vector<std::string>& args, const std::string& hint = "",
           const std::function<std::string(const std::string&)>& stray = {});

// Checks for CLI::Option::check(). A refused text gets a message that reads after the flag's
// name ("must be at least 1, got 0"); parse() puts the two together.
// An integer from `min` to `max`.
CLI::Validator whole_number(long long min, unsigned long long max);
// A finite number of at least `min` ("nan" and "inf" would train nothing, or into NaN).
CLI::Validator finite_number(double min);
// One of `allowed`.
CLI::Validator one_of(std::vector<std::string> allowed);

}  // namespace weft::cli
