#pragma once
// Removing the shared-memory files jobs leave behind. The shm transport names its files
// "weft-<job_id>-<group>-r<rank>-p<pid>" in /dev/shm, <pid> being the process that created
// the file; a rank that crashes or is killed during set-up cannot unlink its own. weftrun
// removes a dead rank's at once and those of jobs that are gone at start (both with
// comm/transport/shm/shm_sweep.h, which knows whose owner has exited), and the rest of the
// job's by name when it ends (here).
#include <filesystem>
#include <string>
#include <vector>

namespace weft::launcher {

inline constexpr const char* kShmDir = "/dev/shm";

// Unlinks every file in `dir` whose name starts with "weft-<job_id>-" and returns their names.
// Never throws: cleanup at exit must not hide the job's own outcome. An empty job id, or one
// with a '/' or '-' (which could reach another job's files), removes nothing.
std::vector<std::string> remove_job_shm_files(const std::filesystem::path& dir,
                                              const std::string& job_id);

}  // namespace weft::launcher
