#pragma once
// The failure summary weftrun prints on stderr when a job does not succeed: one line saying
// why, then the ranks grouped by how they ended. Pure; nothing is printed on success.
#include <optional>
#include <string>
#include <vector>

namespace weft::launcher {

struct RankOutcome {
  int rank = 0;
  std::optional<int> wait_status;    // empty: still running when weftrun gave up waiting
  bool stopped_by_launcher = false;  // weftrun signalled it (after a failure or a signal)
};

// "rank 3", "ranks 0-2,5".
std::string format_rank_set(std::vector<int> ranks);

// `cause` says why the job failed, e.g. "rank 1 exited with code 3". Lines start "weftrun: ".
std::string failure_summary(const std::string& job_id, int exit_code, const std::string& cause,
                            const std::vector<RankOutcome>& outcomes);

}  // namespace weft::launcher
