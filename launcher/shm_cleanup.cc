#include "launcher/shm_cleanup.h"

#include <system_error>

namespace weft::launcher {

std::vector<std::string> remove_job_shm_files(const std::filesystem::path& dir,
                                              const std::string& job_id) {
  std::vector<std::string> removed;
  // Job "j1" must never match job "j1-x"'s files: ids with '-' are refused outright.
  if (job_id.empty() || job_id.find_first_of("/-") != std::string::npos) return removed;
  const std::string prefix = "weft-" + job_id + "-";
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return removed;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::error_code remove_ec;
    if (std::filesystem::remove(it->path(), remove_ec)) removed.push_back(name);
  }
  return removed;
}

}  // namespace weft::launcher
