#include "comm/transport/shm/shm_sweep.h"

#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <thread>

#include "comm/transport/shm/shm_ring.h"
#include "runtime/clock.h"
#include "runtime/log.h"

namespace weft::comm::shm {
namespace {

using namespace std::chrono_literals;

// A file whose header is unwritten after this long is not being created by anyone.
constexpr auto kUnwrittenPatience = 60s;
constexpr auto kRecheck = 20ms;

struct Candidate {
  std::string name;  // as in /dev/shm, without the leading '/'
  int pid = 0;
};

// The <pid> of "...-p<pid>", or 0.
int pid_in_name(const std::string& name) {
  size_t at = name.rfind("-p");
  if (at == std::string::npos) return 0;
  int pid = 0;
  const char* end = name.data() + name.size();
  auto [stop, ec] = std::from_chars(name.data() + at + 2, end, pid);
  return ec == std::errc() && stop == end && pid > 0 ? pid : 0;
}

// Gone, or a zombie that only its parent's wait() keeps in the process table.
bool process_gone(int pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');  // the command name may hold spaces and parentheses
  return paren != std::string::npos && paren + 2 < line.size() &&
         (line[paren + 2] == 'Z' || line[paren + 2] == 'X');
}

std::vector<Candidate> files_of_others(const std::string& prefix) {
  std::vector<Candidate> found;
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return found;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    int pid = name.rfind(prefix, 0) == 0 ? pid_in_name(name) : 0;
    if (pid > 0 && pid != getpid()) found.push_back({name, pid});
  }
  closedir(dir);
  return found;
}

// Whether the creator recorded in the file's header, if written, is this file's <pid> here.
bool owner_is_ours(const Candidate& c, bool trust_unwritten) {
  std::optional<SegmentOwner> owner = segment_owner("/" + c.name);
  if (owner) return owner->same_pid_namespace && owner->pid == c.pid;
  if (trust_unwritten) return true;
  struct stat st {};
  return stat(("/dev/shm/" + c.name).c_str(), &st) == 0 &&
         time(nullptr) - st.st_mtime > std::chrono::seconds(kUnwrittenPatience).count();
}

std::vector<std::string> sweep(const std::string& prefix, bool trust_unwritten,
                               std::chrono::milliseconds grace) {
  std::vector<std::string> removed;
  std::vector<Candidate> waiting = files_of_others(prefix);
  std::erase_if(waiting, [&](const Candidate& c) { return !owner_is_ours(c, trust_unwritten); });
  Deadline give_up = Clock::now() + grace;
  for (;;) {
    std::erase_if(waiting, [&](const Candidate& c) {
      if (!process_gone(c.pid)) return false;
      if (shm_unlink(("/" + c.name).c_str()) == 0) removed.push_back(c.name);
      return true;
    });
    if (waiting.empty() || Clock::now() >= give_up) break;
    std::this_thread::sleep_for(kRecheck);
  }
  for (const auto& name : removed)
    WEFT_INFO("removed /dev/shm/" << name << ": the rank that created it has exited");
  return removed;
}

}  // namespace

std::vector<std::string> sweep_dead_files() { return sweep("weft-", false, 0ms); }

std::vector<std::string> sweep_job_files(const std::string& prefix,
                                         std::chrono::milliseconds grace) {
  return sweep(prefix, true, grace);
}

}  // namespace weft::comm::shm
