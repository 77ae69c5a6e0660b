#include "comm/mpi/mpi_rendezvous.h"

#include <unistd.h>

#include <cstring>

#include "comm/mpi/mpi_comm.h"
#include "comm/mpi/mpi_runtime.h"
#include "comm/rendezvous/job_token.h"
#include "comm/rendezvous/coordinator.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/random.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

// Where the other ranks reach rank 0: loopback when the whole job is on this node, else this
// host's name (which the other nodes resolve).
std::string server_host(const World& w) {
  if (w.local_size == w.size) return "127.0.0.1";
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) throw_errno("gethostname");
  return name;
}

struct Keepalive {
  MpiComm comm;  // holds the MPI runtime, so MPI is finalized only after the communicator
  std::unique_ptr<Coordinator> server;
  std::chrono::milliseconds patience{0};

  // Rank 0's store must outlive every rank's use of it: a rank left out of a split may be done
  // while the others still meet through the store to set up their sub-group. So the ranks
  // leave together, through a barrier bounded by WEFT_TIMEOUT.
  ~Keepalive() {
    if (!comm) return;
    MPI_Request request = MPI_REQUEST_NULL;
    if (MPI_Ibarrier(comm.get(), &request) != MPI_SUCCESS) return;
    if (!wait_for_request(request, deadline_after(patience)))
      WEFT_WARN("rank " << comm.rank()
                        << " stopped waiting for the other ranks to close their communicators"
                        << (server ? "; the store they rendezvous through is going away" : ""));
  }
};

}  // namespace

StoreRendezvous rendezvous_through_mpi(const World& w, Deadline deadline) {
  auto keep = std::make_shared<Keepalive>();
  keep->comm = MpiComm::dup_world(MpiRuntime::acquire(), deadline);
  keep->patience = env::timeout();
  if (keep->comm.size() != w.size || keep->comm.rank() != w.rank)
    throw Error(ErrorCode::InvalidArgument,
                "rank " + std::to_string(w.rank) + " of " + std::to_string(w.size) + " (from " +
                    w.launcher + ") but MPI sees rank " + std::to_string(keep->comm.rank()) +
                    " of " + std::to_string(keep->comm.size()) +
                    "; the job's environment does not match MPI's");

  // Rank 0 says "address\njob id\ntoken" in one fixed-size broadcast.
  char message[1024] = {};
  if (w.rank == 0) {
    std::string token = random_hex(16);
    // On one node the store listens on loopback; other nodes reach it at this host's name,
    // which may resolve to any of its interfaces (the token keeps strangers out).
    const std::string host = server_host(w);
    keep->server =
        std::make_unique<Coordinator>(host == "127.0.0.1" ? host : "0.0.0.0", 0, token);
    std::string job = w.job_id != "local" ? w.job_id : "mpi" + random_hex(6);
    std::string text =
        host + ":" + std::to_string(keep->server->port()) + "\n" + job + "\n" + token;
    if (text.size() >= sizeof message)  // the message names the host, never the token
      throw Error(ErrorCode::InvalidArgument, "rank 0: host name too long to broadcast: " + host);
    std::memcpy(message, text.data(), text.size());
  }
  MPI_Request request = MPI_REQUEST_NULL;
  check_mpi(MPI_Ibcast(message, sizeof message, MPI_CHAR, 0, keep->comm.get(), &request),
            "MPI_Ibcast", w.rank, "the rendezvous");
  if (!wait_for_request(request, deadline))
    throw Error(ErrorCode::Timeout,
                "rank " + std::to_string(w.rank) +
                    " timed out waiting for rank 0's store address over MPI: rank 0 did not "
                    "start or is stuck; raise WEFT_TIMEOUT if ranks start slowly");
  std::string text(message, strnlen(message, sizeof message));
  size_t a = text.find('\n'), b = text.find('\n', a + 1);
  if (a == std::string::npos || b == std::string::npos)
    throw Error(ErrorCode::Corrupt, "rank " + std::to_string(w.rank) +
                                        ": malformed rendezvous message from rank 0 (" +
                                        std::to_string(text.size()) + " bytes)");
  StoreRendezvous out;
  out.job_id = text.substr(a + 1, b - a - 1);
  out.token = text.substr(b + 1);
  auto store = CoordinatorStore::connect(text.substr(0, a), out.token, deadline);
  store->served_by(0);
  store->join_as(w.rank, w.size);  // as under weftrun: a rank that dies is named to the others at once
  out.host = store->local_host();
  out.store = std::move(store);
  out.keepalive = std::move(keep);
  return out;
}

}  // namespace weft::comm
