// Stand-ins for the MPI entry points when weft is built without MPI (WEFT_WITH_MPI=OFF, or no
// MPI found): each fails with a clear message, and nothing else in weft needs to know.
#include "comm/mpi/backends.h"
#include "comm/mpi/mpi_rendezvous.h"
#include "comm/native_backend.h"
#include "comm/transport_setup.h"
#include "runtime/error.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

[[noreturn]] void no_mpi(const std::string& what, const std::string& instead) {
  throw Error(ErrorCode::Unavailable,
              what + ": this weft was built without MPI (WEFT_WITH_MPI=OFF, or CMake found no "
                     "MPI); install libopenmpi-dev and rebuild, or " + instead);
}

}  // namespace

std::unique_ptr<Transport> make_mpi_transport(const TransportSetup& s) {
  no_mpi("rank " + std::to_string(s.rank) + ": backend mpi-ring", "use backend tcp or shm");
}

std::unique_ptr<NativeBackend> make_native_mpi_backend(const World& w, Deadline) {
  no_mpi("rank " + std::to_string(w.rank) + ": backend mpi", "use backend tcp or shm");
}

StoreRendezvous rendezvous_through_mpi(const World& w, Deadline) {
  no_mpi("rank " + std::to_string(w.rank) +
             " was started by mpirun without WEFT_STORE_ADDR or MASTER_ADDR, so it would meet "
             "its peers through MPI",
         "launch with weftrun, or set MASTER_ADDR and MASTER_PORT");
}

}  // namespace weft::comm
