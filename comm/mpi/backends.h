#pragma once
// What the MPI folder offers the backend registry. Built without MPI, each of these throws
// Unavailable saying so (mpi_unavailable.cc).
#include <memory>

#include "comm/native_backend.h"
#include "comm/transport_setup.h"

namespace weft {
struct World;
}

namespace weft::comm {

// MPI_Isend/MPI_Irecv on a private MPI communicator; needs no store. The world group must be
// the MPI job (launched by mpirun).
std::unique_ptr<Transport> make_mpi_transport(const TransportSetup& setup);

// The native MPI backend over the whole MPI job (mpirun). Checks that MPI's view of the job
// matches `world`; waits for the other ranks until `deadline`.
std::unique_ptr<NativeBackend> make_native_mpi_backend(const World& world, Deadline deadline);

}  // namespace weft::comm
