#pragma once
// Removing the shared-memory files a job leaves behind. The shm transport names its files
// "weft-<job_id>-<group>-r<rank>" in /dev/shm; a rank that crashes or is killed cannot unlink
// its own, so weftrun does it when the job ends.
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
