#include "launcher/node_layout.h"

#include <cerrno>
#include <cstdlib>

#include "runtime/error.h"
#include "runtime/socket.h"

namespace weft::launcher {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

long parse_whole(const std::string& flag, const std::string& text, const char* example) {
  errno = 0;
  char* end = nullptr;
  long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    fail(flag + " expects a whole number, got '" + text + "' (for example: " + example + ")");
  return n;
}

constexpr char kExample[] =
    "weftrun --nnodes 2 --node-rank 0 --coordinator 10.0.0.1:29400 -n 4 -- ./prog";

}  // namespace

NodeLayout node_layout(const LaunchOptions& options) {
  return {options.node_rank, options.num_nodes, options.num_ranks};
}

int parse_node_count(const std::string& text) {
  long n = parse_whole("--nnodes", text, "--nnodes 2");
  if (n < 1 || n > kMaxNodes)
    fail("--nnodes must be 1 to " + std::to_string(kMaxNodes) + ", got " + text);
  return static_cast<int>(n);
}

int parse_node_rank(const std::string& text) {
  long n = parse_whole("--node-rank", text, "--node-rank 0");
  if (n < 0 || n >= kMaxNodes)
    fail("--node-rank must be 0 to " + std::to_string(kMaxNodes - 1) + ", got " + text);
  return static_cast<int>(n);
}

void check_node_layout(const LaunchOptions& options) {
  if (options.node_rank >= options.num_nodes)
    fail("--node-rank " + std::to_string(options.node_rank) + " is not below --nnodes " +
         std::to_string(options.num_nodes) + ": nodes are numbered 0.." +
         std::to_string(options.num_nodes - 1) + ", one weftrun each, as in " + kExample);
  if (!options.coordinator) {
    if (options.num_nodes > 1)
      fail("--nnodes " + std::to_string(options.num_nodes) +
           " needs --coordinator HOST:PORT, the same on every node: an address of node 0 that "
           "every node reaches (node 0's weftrun then serves the coordinator there), or of a "
           "weft-coordinator; as in " +
           std::string(kExample));
    return;
  }
  comm::HostPort where = comm::parse_host_port(*options.coordinator, "--coordinator");
  if (where.host == "0.0.0.0" || where.host == "::")
    fail("--coordinator " + *options.coordinator +
         " names every interface, which other nodes cannot connect to: give node 0's address "
         "on the network the nodes share, e.g. 10.0.0.1:29400");
  if (options.num_ranks > 0 &&
      static_cast<long long>(options.num_ranks) * options.num_nodes > 1'000'000)
    fail("--nnodes " + std::to_string(options.num_nodes) + " x -n " +
         std::to_string(options.num_ranks) + " is more than a million ranks");
}

}  // namespace weft::launcher
