#include "launcher/program_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/error.h"

namespace weft::launcher {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

bool is_regular_file(const std::string& candidate) {
  struct stat st {};
  return ::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// An explicit path: every way it can fail gets its own advice.
std::string check_explicit(const std::string& name) {
  struct stat st {};
  if (::stat(name.c_str(), &st) != 0) {
    int e = errno;
    fail("cannot run '" + name + "': " + std::strerror(e) +
         "; check the path (relative paths start from the current directory)");
  }
  if (S_ISDIR(st.st_mode)) fail("cannot run '" + name + "': it is a directory, not a program");
  if (!S_ISREG(st.st_mode)) fail("cannot run '" + name + "': it is not a regular file");
  if (::access(name.c_str(), X_OK) != 0)
    fail("cannot run '" + name + "': it is not executable; make it so with: chmod +x " + name);
  return name;
}

}  // namespace

std::string resolve_program(const std::string& name, const std::string& path) {
  if (name.empty()) fail("the program name after '--' is empty");
  if (name.find('/') != std::string::npos) return check_explicit(name);

  std::string not_executable;  // first match without the x bit, for a better message
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (is_regular_file(candidate)) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      if (not_executable.empty()) not_executable = candidate;
    }
    start = end + 1;
  }
  if (!not_executable.empty())
    fail("cannot run '" + name + "': " + not_executable +
         " is not executable; make it so with: chmod +x " + not_executable);
  fail("program '" + name + "' was not found on PATH (" + path +
       "); check the spelling, or give its path, e.g. ./" + name);
}

}  // namespace weft::launcher
