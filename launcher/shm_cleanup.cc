#include "launcher/shm_cleanup.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <functional>
#include <system_error>

namespace weft::launcher {
namespace {

// Job "j1" must never match job "j1-x"'s files: ids with '-' are refused outright.
bool safe_job_id(const std::string& job_id) {
  return !job_id.empty() && job_id.find_first_of("/-") == std::string::npos;
}

// The <pid> of a name ending "-p<pid>", or 0.
pid_t owner_pid(const std::string& name) {
  size_t at = name.rfind("-p");
  if (at == std::string::npos) return 0;
  const char* first = name.data() + at + 2;
  const char* last = name.data() + name.size();
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(first, last, pid);
  return ec == std::errc() && end == last && first != last && pid > 0 ? pid : 0;
}

// Only "no such process" means gone: EPERM is a live process of another user.
bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

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

std::vector<std::string> remove_orphaned_job_shm_files(const std::filesystem::path& dir,
                                                       const std::string& job_id) {
  if (!safe_job_id(job_id)) return {};
  return remove_matching(dir, "weft-" + job_id + "-", [](const std::string& name) {
    pid_t pid = owner_pid(name);
    return pid > 0 && process_gone(pid);
  });
}

std::vector<std::string> sweep_orphaned_shm_files(const std::filesystem::path& dir) {
  const uid_t me = ::geteuid();
  return remove_matching(dir, "weft-", [&](const std::string& name) {
    struct stat st {};
    pid_t pid = owner_pid(name);
    return pid > 0 && ::lstat((dir / name).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           st.st_uid == me && process_gone(pid);
  });
}

}  // namespace weft::launcher
