#include "launcher/node_layout.h"

#include "runtime/error.h"
#include "runtime/socket.h"

namespace weft::launcher {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

constexpr char kExample[] =
    "weftrun --nnodes 2 --node-rank 0 --coordinator 10.0.0.1:29400 -n 4 -- ./prog";

}  // namespace

NodeLayout node_layout(const LaunchOptions& options) {
  return {options.node_rank, options.num_nodes, options.num_ranks};
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
