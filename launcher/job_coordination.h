#pragma once
// Where a weftrun job's ranks meet, and who the job is.
//
// One node (no --coordinator): a fresh job id and token (job_identity.h), and a coordinator
// served here on loopback, which only this machine's processes reach.
// Several nodes (node_layout.h): the token by comm::coordinator_token (WEFT_TOKEN, required
// unless the coordinator is on loopback or WEFT_INSECURE=1); node 0 serves the coordinator when
// --coordinator names an address of its own, listening there and nowhere else, and otherwise it
// is served elsewhere (weft-coordinator, on another machine or on node 0's own when it holds the
// port already). Node 0 posts its job id there and the other nodes read
// it, so that every rank of the job names the same job in its connections.
// The ranks connect to the --coordinator address, node 0's included, so that each learns the
// address of its node that reaches the coordinator, where its tcp transport then listens.
#include <chrono>
#include <memory>
#include <string>

#include "comm/rendezvous/coordinator.h"
#include "launcher/coordinator_watch.h"
#include "launcher/job_identity.h"
#include "launcher/launch_options.h"
#include "runtime/socket.h"

namespace weft::launcher {

class JobCoordination {
 public:
  // Waits for a coordinator served elsewhere and for node 0's job id as long as the ranks would
  // (--timeout, else WEFT_TIMEOUT). InvalidArgument for a job across machines without a token;
  // Unavailable when the address cannot be served or reached.
  JobCoordination(const LaunchOptions& options, const comm::CoordinatorOptions& coordination);
  ~JobCoordination();
  JobCoordination(const JobCoordination&) = delete;
  JobCoordination& operator=(const JobCoordination&) = delete;

  const JobIdentity& identity() const { return identity_; }
  const std::string& store_addr() const { return store_addr_; }  // the ranks' WEFT_STORE_ADDR
  // Where torch.distributed's env:// rendezvous meets (the ranks' MASTER_ADDR, MASTER_PORT): on
  // one node loopback and a free port; across nodes node 0's address as the coordinator sees it
  // and the port node 0 picked, which the other nodes read from the coordinator.
  const comm::HostPort& torch_master() const { return torch_master_; }
  bool serves() const { return served_ != nullptr; }

  // Once this node's ranks are done: when the coordinator is served here for other nodes too,
  // keeps serving until every other node has arrived and its ranks have left (they finish the
  // last steps a moment later), or a loss, or `patience`. False when it gave up waiting.
  bool let_other_nodes_finish(std::chrono::milliseconds patience);

  // The coordinator's view of this generation's loss (Coordinator::loss), when it is served
  // here; none otherwise (a node serving none learns of losses from its ranks' exits).
  comm::Coordinator::Loss loss() const;
  // weftrun --elastic, on the node that serves the coordinator: a fresh generation of it
  // (Coordinator::begin_generation), and its number. Across nodes the fresh generation is this
  // node's ranks alone: the other nodes' weftruns leave the job when their generation ends
  // (their ranks were lost, or lost a peer), and none rejoins.
  void begin_generation();
  uint64_t generation() const;

  // A node whose coordinator is served elsewhere: once it has not answered for the heartbeat
  // timeout, why this node's ranks cannot go on, naming it (coordinator_watch.h); else empty.
  std::string coordinator_lost() const;

  // Posts the job's death notice naming a rank of this node (Coordinator::post_rank_lost), to
  // the coordinator served here or elsewhere. Never throws: the notice only hurries the others.
  void post_rank_lost(const std::string& notice);

 private:
  JobIdentity identity_;
  std::string store_addr_;
  comm::HostPort torch_master_;
  int num_nodes_ = 1;
  std::unique_ptr<comm::Coordinator> served_;
  std::unique_ptr<comm::CoordinatorStore> client_;  // several nodes: this weftrun's own
  std::unique_ptr<CoordinatorWatch> watch_;         // through client_, when served elsewhere
};

}  // namespace weft::launcher
