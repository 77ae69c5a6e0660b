#include "launcher/job_coordination.h"

#include <chrono>
#include <string>
#include <vector>

#include "comm/rendezvous/job_token.h"
#include "launcher/rank_environment.h"
#include "runtime/clock.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/socket.h"

namespace weft::launcher {
namespace {

// Node 0's job id and node layout, which the other nodes' weftruns read.
constexpr char kJobIdKey[] = "weftrun/job-id";
constexpr char kLayoutKey[] = "weftrun/layout";
constexpr char kTorchMasterKey[] = "weftrun/torch-master";

// How long node 0's weftrun waits for a coordinator that already listens on its address.
constexpr std::chrono::milliseconds kLocalPatience{5000};
// How long a weftrun on another machine than the coordinator tries to post a death notice.
constexpr std::chrono::milliseconds kPostPatience{2000};

// Set by node I once it has read what node 0 posted.
std::string arrived_key(int node) { return "weftrun/node-" + std::to_string(node) + "-arrived"; }

// "--nnodes 2 -n 4": how a node's layout is compared and named.
std::string layout_text(const LaunchOptions& options) {
  return "--nnodes " + std::to_string(options.num_nodes) + " -n " +
         std::to_string(options.num_ranks);
}

}  // namespace

JobCoordination::JobCoordination(const LaunchOptions& options,
                                 const comm::CoordinatorOptions& coordination)
    : identity_(JobIdentity::generate()),
      torch_master_{"127.0.0.1", 0},
      num_nodes_(options.num_nodes) {
  if (options.node_rank == 0) torch_master_.port = torch_rendezvous_port();
  if (!options.coordinator) {
    served_ = std::make_unique<comm::Coordinator>("127.0.0.1", 0, identity_.token, coordination);
    store_addr_ = "127.0.0.1:" + std::to_string(served_->port());
    return;
  }
  const std::string& address = *options.coordinator;
  comm::HostPort where = comm::parse_host_port(address, "--coordinator");
  identity_.token = comm::coordinator_token(where.host, "--coordinator " + address);
  store_addr_ = address;
  const Deadline deadline = deadline_after(
      options.timeout
          ? std::chrono::milliseconds(static_cast<long long>(std::stod(*options.timeout) * 1000))
          : env::timeout());
  bool already_served = false;
  if (options.node_rank == 0 && comm::is_local_address(where.host)) {
    try {
      served_ = std::make_unique<comm::Coordinator>(where.host, where.port, identity_.token,
                                                    coordination);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::Unavailable) throw;
      already_served = true;  // a weft-coordinator started beside node 0 serves: join it
    }
  }
  if (!already_served) {
    client_ = comm::CoordinatorStore::connect(address, identity_.token, deadline);
  } else {
    // It listens already: it answers at once, unless the port is something else's.
    try {
      client_ = comm::CoordinatorStore::connect(address, identity_.token,
                                                deadline_after(kLocalPatience));
    } catch (const Error& e) {
      throw Error(ErrorCode::Unavailable,
                  "--coordinator " + address +
                      " is an address of this machine (node 0), but its port is taken by "
                      "something that is not this job's coordinator (" +
                      e.message() +
                      "): pick a free port, or start weft-coordinator there with this job's "
                      "WEFT_TOKEN");
    }
    WEFT_INFO("node 0 joins the coordinator already serving at " << address);
  }
  // Without its coordinator this node's ranks cannot go on, but nothing tells them it is gone.
  if (!served_ && coordination.heartbeat_timeout.count() > 0)
    watch_ = std::make_unique<CoordinatorWatch>(*client_, address, coordination.heartbeat_timeout);
  if (options.node_rank == 0) {
    torch_master_.host = client_->local_host();
    client_->set(kLayoutKey, layout_text(options));
    client_->set(kTorchMasterKey, torch_master_.str());
    client_->set(kJobIdKey, identity_.job_id);
    return;
  }
  identity_.job_id = client_->get(kJobIdKey, deadline);
  torch_master_ = comm::parse_host_port(client_->get(kTorchMasterKey, deadline),
                                        "node 0's torch rendezvous");
  // Different -n or --nnodes would give the nodes' ranks different world sizes: say so here,
  // naming the flags, before a rank starts.
  const std::string node0 = client_->get(kLayoutKey, deadline);
  if (node0 != layout_text(options))
    throw Error(ErrorCode::InvalidArgument,
                "node 0 of this job was started with " + node0 + " but node " +
                    std::to_string(options.node_rank) + " (this weftrun) with " +
                    layout_text(options) + ": give every node's weftrun the same --nnodes and -n");
  // Last: once every node has arrived and every rank that joined has left, node 0's weftrun may
  // exit and its coordinator with it, so nothing may be read from it after this.
  client_->set(arrived_key(options.node_rank), "1");
}

JobCoordination::~JobCoordination() = default;

bool JobCoordination::let_other_nodes_finish(std::chrono::milliseconds patience) {
  if (!served_ || !client_) return true;  // one node, or served elsewhere
  const Deadline deadline = deadline_after(patience);
  // Every other node must have arrived (its ranks may not have joined yet), then left.
  std::vector<std::string> arrivals;
  for (int node = 1; node < num_nodes_; ++node) arrivals.push_back(arrived_key(node));
  try {
    client_->wait(arrivals, deadline);
  } catch (const Error&) {
    return false;  // not all arrived in time, or the job lost a rank
  }
  return served_->wait_until_all_left(deadline);
}

comm::Coordinator::Loss JobCoordination::loss() const {
  return served_ ? served_->loss() : comm::Coordinator::Loss{};
}

void JobCoordination::begin_generation() {
  if (!served_)
    throw Error(ErrorCode::Internal, "a new generation needs a coordinator served here");
  served_->begin_generation();
  // Its keys (node 0's layout, the other nodes' arrivals) went with the last generation, and no
  // other node comes to the next one: this node finishes alone.
  client_.reset();
  num_nodes_ = 1;
}

uint64_t JobCoordination::generation() const { return served_ ? served_->generation() : 0; }

std::string JobCoordination::coordinator_lost() const { return watch_ ? watch_->lost() : ""; }

void JobCoordination::post_rank_lost(const std::string& notice) {
  if (served_) {
    served_->post_rank_lost(notice);
    return;
  }
  try {
    client_->post_rank_lost(notice, deadline_after(kPostPatience));
  } catch (const Error& e) {
    // Already lost (an earlier notice ended the generation) or unreachable: the ranks' own
    // heartbeats tell the coordinator anyway.
    WEFT_INFO("could not post the death notice to the coordinator at " << store_addr_ << ": "
                                                                       << e.what());
  }
}

}  // namespace weft::launcher
