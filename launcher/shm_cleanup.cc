#include "launcher/shm_cleanup.h"

#include <functional>
#include <system_error>

namespace weft::launcher {
namespace {

// Job "j1" must never match job "j1-x"'s files: ids with '-' are refused outright.
bool safe_job_id(const std::string& job_id) {
  return !job_id.empty() && job_id.find_first_of("/-") == std::string::npos;
}

// Unlinks the files in `dir` whose name starts with `prefix` and that `remove_it` accepts.
std::vector<std::string> remove_matching(const std::filesystem::path& dir,
                                         const std::string& prefix,
                                         const std::function<bool(const std::string&)>& remove_it) {
  std::vector<std::string> removed;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return removed;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !remove_it(name)) continue;
    std::error_code remove_ec;
    if (std::filesystem::remove(it->path(), remove_ec)) removed.push_back(name);
  }
  return removed;
}

}  // namespace

std::vector<std::string> remove_job_shm_files(const std::filesystem::path& dir,
                                              const std::string& job_id) {
  if (!safe_job_id(job_id)) return {};
  return remove_matching(dir, "weft-" + job_id + "-", [](const std::string&) { return true; });
}

}  // namespace weft::launcher
