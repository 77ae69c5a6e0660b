#pragma once
// What a transport needs to connect a group of ranks, and the factories that build one.
#include <memory>
#include <string>
#include <vector>

#include "comm/store.h"
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

// TCP: any hosts. Each pair of ranks gets one full-duplex connection.
std::unique_ptr<Transport> make_tcp_transport(const TransportSetup& setup);
// Shared memory: ranks on one node, a FIFO per ordered pair in /dev/shm.
std::unique_ptr<Transport> make_shm_transport(const TransportSetup& setup);
// MPI: MPI_Isend/MPI_Irecv on a private MPI communicator; needs no store. The world group must
// be the MPI job (launched by mpirun). Throws Unavailable when weft was built without MPI.
std::unique_ptr<Transport> make_mpi_transport(const TransportSetup& setup);
// NCCL: ncclSend/ncclRecv on a stream of cuda:`cuda_device`, one GPU per rank; meets through
// the store (NCCL's unique id). Moves device memory, and host memory staged through the GPU.
// Throws Unavailable without that device, or when weft was built without CUDA or NCCL.
std::unique_ptr<Transport> make_nccl_transport(const TransportSetup& setup, int cuda_device);
// In-process: ranks are threads of one process sharing `hub` (tests, embedding).
class InprocHub;
std::unique_ptr<Transport> make_inproc_transport(std::shared_ptr<InprocHub> hub, int rank);

}  // namespace weft::comm
