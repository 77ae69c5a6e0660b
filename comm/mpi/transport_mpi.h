#pragma once
// The mpi transport over a given MPI communicator, for weft's own MPI code (the native MPI
// backend moves its send/recv through one). Everyone else builds it with make_mpi_transport()
// from transport_setup.h.
#include <memory>

#include "comm/mpi/mpi_comm.h"
#include "comm/transport.h"

namespace weft::comm {

// Takes `comm` (a communicator no one else sends on). Collective over its ranks, until
// `deadline`.
std::unique_ptr<Transport> make_mpi_transport(MpiComm comm, Deadline deadline);

}  // namespace weft::comm
