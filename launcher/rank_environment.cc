#include "launcher/rank_environment.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <utility>

#include "runtime/error.h"
#include "runtime/unique_fd.h"

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
      {"WEFT_RESTART_COUNT", std::to_string(in.restart_count)},
  };
  if (in.backend) ours.emplace_back("WEFT_BACKEND", *in.backend);
  if (in.timeout) ours.emplace_back("WEFT_TIMEOUT", *in.timeout);
  // The same values under torchrun's names, for torch.distributed and scripts written for
  // torchrun (World::from_env() reads WEFT_* first, so weft itself goes by those).
  const std::pair<const char*, const char*> torchrun_names[] = {
      {"RANK", "WEFT_RANK"},
      {"WORLD_SIZE", "WEFT_WORLD_SIZE"},
      {"LOCAL_RANK", "WEFT_LOCAL_RANK"},
      {"LOCAL_WORLD_SIZE", "WEFT_LOCAL_WORLD_SIZE"},
      {"GROUP_RANK", "WEFT_NODE_RANK"},
  };
  for (const auto& [torch_name, weft_name] : torchrun_names) {
    auto it = std::find_if(ours.begin(), ours.end(),
                           [&](const auto& kv) { return kv.first == weft_name; });
    std::string value = it->second;
    ours.emplace_back(torch_name, std::move(value));
  }
  ours.emplace_back("MASTER_ADDR", in.master_addr);
  ours.emplace_back("MASTER_PORT", std::to_string(in.master_port));

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

namespace {

// Whether a TCP listener could take `port` on every interface now (0: any free port). Returns
// the port bound, or 0 when it is taken.
int try_bind(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw_errno("creating a socket to find a free MASTER_PORT");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 0;
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

}  // namespace

int torch_rendezvous_port() {
  int ephemeral_low = 32768;  // Linux's default, when /proc does not say
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  // Up to 10,000 ports below the ephemeral range (and above the well-known ones), tried from a
  // random place so that jobs started together rarely pick the same one.
  const int low = std::max(1024, ephemeral_low - 10'000), count = ephemeral_low - low;
  if (count > 0) {
    const int start = static_cast<int>(std::random_device{}() % static_cast<unsigned>(count));
    for (int i = 0; i < std::min(count, 200); ++i)
      if (int port = try_bind(low + (start + i) % count)) return port;
  }
  if (int port = try_bind(0)) return port;
  throw Error(ErrorCode::Io, "no free TCP port for MASTER_PORT: every port tried is taken");
}

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}

}  // namespace weft::launcher
