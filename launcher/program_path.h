#pragma once
// Finding the program weftrun is asked to run, the way a shell would, before any rank starts:
// a typo should be one clear error, not N copies of "exec failed".
#include <string>

namespace weft::launcher {

// `name` with a '/' is used as given; otherwise it is looked up in the ':'-separated `path`
// (empty entries mean the current directory, as in a shell). Returns a path execve accepts.
// Throws Error(InvalidArgument) saying what is wrong: not found on PATH, no such file, a
// directory, or not executable - and how to fix it.
std::string resolve_program(const std::string& name, const std::string& path);

}  // namespace weft::launcher
