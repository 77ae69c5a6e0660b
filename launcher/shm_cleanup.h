#pragma once
// Removing the shared-memory files jobs leave behind. The shm transport names its files
// "weft-<job_id>-<group>-r<rank>-p<pid>" in /dev/shm, <pid> being the process that created
// the file; a rank that crashes or is killed during set-up cannot unlink its own, so weftrun
// does: a dead rank's at once, the rest of the job's when it ends, and at start those of jobs
// whose owners are gone (a killed weftrun cleans nothing up).
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

// Unlinks the files of job `job_id` (as above) whose owner process no longer exists: those of
// a rank that died while the job goes on. Returns their names; never throws.
std::vector<std::string> remove_orphaned_job_shm_files(const std::filesystem::path& dir,
                                                       const std::string& job_id);

// Unlinks the weft files of any job whose owner process no longer exists, when they belong to
// this user (another user's job is theirs to clean). Returns their names; never throws.
// Liveness is asked of this pid namespace: containers that share /dev/shm but not pids must
// not share it with a sweeping weftrun.
std::vector<std::string> sweep_orphaned_shm_files(const std::filesystem::path& dir);

}  // namespace weft::launcher
