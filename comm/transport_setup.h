#pragma once
// What a transport needs to connect a group of ranks. Each transport's folder declares the
// factory that builds one from it (comm/transport/tcp/transport_tcp.h, ...).
#include <memory>
#include <string>
#include <vector>

#include "comm/rendezvous/store.h"
#include "comm/transport.h"

namespace weft::comm {

struct TransportSetup {
  Store* store = nullptr;  // already scoped to this group (a PrefixStore per communicator)
  // The same store, owned, for a transport that keeps using it after set-up (nccl-ring posts
  // abort notices there for its peers). May be null: then notices stay within this process.
  std::shared_ptr<Store> shared_store;
  int rank = 0;            // rank within the group
  int size = 1;
  std::string job_id;      // names shared-memory files; checked in handshakes
  std::string token;       // secret every connection must present
  std::string group_tag;   // unique per communicator within the job ("world", "world.s0c1", ...)
  std::string host;        // address peers on other hosts reach this one at (tcp)
  Deadline deadline;       // connection set-up must finish by then
  // For a group split from another (Communicator::split): the parent group's transport and the
  // members' ranks in it, in new-rank order. MPI builds the child from the parent's
  // communicator; the other transports meet through the store and ignore these.
  const Transport* parent = nullptr;
  std::vector<int> parent_ranks;
};

}  // namespace weft::comm
