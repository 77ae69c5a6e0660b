#pragma once
// Rendezvous through MPI: how ranks started by mpirun find a store for the tcp and shm
// transports with no weftrun and no MASTER_ADDR. Rank 0 runs a Coordinator on a free port and
// broadcasts its address, with a fresh job id and token, over MPI.
#include <memory>
#include <string>

#include "comm/rendezvous/store.h"
#include "runtime/clock.h"

namespace weft {
struct World;
}

namespace weft::comm {

struct StoreRendezvous {
  std::shared_ptr<Store> store;
  std::string host;    // this host as the store sees it (what tcp listens on for peers)
  std::string job_id;  // the same on every rank: names shared-memory files
  std::string token;   // the same on every rank: every connection presents it
  // Keeps the store server (rank 0) and MPI itself alive: hold it as long as the communicator.
  std::shared_ptr<void> keepalive;
};

// Collective over the MPI job. Throws Unavailable when weft was built without MPI, Timeout at
// the deadline.
StoreRendezvous rendezvous_through_mpi(const World& world, Deadline deadline);

}  // namespace weft::comm
