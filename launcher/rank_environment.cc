#include "launcher/rank_environment.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

namespace weft::launcher {

std::vector<std::string> rank_environment(const std::vector<std::string>& base,
                                          const RankEnvironmentInputs& in) {
  std::vector<std::pair<std::string, std::string>> ours = {
      {"WEFT_RANK", std::to_string(in.rank)},
      {"WEFT_WORLD_SIZE", std::to_string(in.world_size)},
      {"WEFT_LOCAL_RANK", std::to_string(in.local_rank)},
      {"WEFT_LOCAL_WORLD_SIZE", std::to_string(in.local_world_size)},
      {"WEFT_NODE_RANK", std::to_string(in.node_rank)},
      {"WEFT_JOB_ID", in.job_id},
      {"WEFT_TOKEN", in.token},
      {"WEFT_STORE_ADDR", in.store_addr},
  };
  if (in.backend) ours.emplace_back("WEFT_BACKEND", *in.backend);
  if (in.timeout) ours.emplace_back("WEFT_TIMEOUT", *in.timeout);

  auto overridden = [&](const std::string& entry) {
    std::string name = entry.substr(0, entry.find('='));
    return std::any_of(ours.begin(), ours.end(), [&](const auto& kv) { return kv.first == name; });
  };
  std::vector<std::string> env;
  env.reserve(base.size() + ours.size());
  for (const std::string& entry : base)
    if (!overridden(entry)) env.push_back(entry);
  for (const auto& [name, value] : ours) env.emplace_back(name).append("=").append(value);
  return env;
}

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}

}  // namespace weft::launcher
