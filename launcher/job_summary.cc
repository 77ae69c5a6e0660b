#include "launcher/job_summary.h"

#include <algorithm>
#include <map>

#include "launcher/exit_status.h"

namespace weft::launcher {
namespace {

std::string describe(const RankOutcome& o) {
  if (!o.wait_status) return "did not exit even after SIGKILL; check for it with ps";
  std::string how = describe_wait_status(*o.wait_status);
  return o.stopped_by_launcher ? "stopped by weftrun, " + how : how;
}

}  // namespace

std::string format_rank_set(std::vector<int> ranks) {
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i > 0) text += ",";
    text += std::to_string(ranks[i]);
    if (j > i) text += "-" + std::to_string(ranks[j]);
    i = j + 1;
  }
  return text;
}

std::string failure_summary(const std::string& job_id, int exit_code, const std::string& cause,
                            const std::vector<RankOutcome>& outcomes) {
  // Group ranks that ended the same way, listed in order of their lowest rank.
  std::map<std::string, std::vector<int>> by_description;
  for (const RankOutcome& o : outcomes) by_description[describe(o)].push_back(o.rank);
  std::vector<std::pair<std::string, std::vector<int>>> groups(by_description.begin(),
                                                               by_description.end());
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) {
    return *std::min_element(a.second.begin(), a.second.end()) <
           *std::min_element(b.second.begin(), b.second.end());
  });

  std::string text = "weftrun: job " + job_id + " failed (exit code " + std::to_string(exit_code) +
                     "): " + cause + "\n";
  for (const auto& [description, ranks] : groups)
    text += "weftrun:   " + format_rank_set(ranks) + ": " + description + "\n";
  return text;
}

}  // namespace weft::launcher
