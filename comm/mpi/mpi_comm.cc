#include "comm/mpi/mpi_comm.h"

#include <utility>

namespace weft::comm {

MpiComm::MpiComm(std::shared_ptr<MpiRuntime> runtime, MPI_Comm comm)
    : runtime_(std::move(runtime)), comm_(comm) {
  // Failures come back as return codes and become weft::Errors naming the rank and the op;
  // MPI's default handler would end the whole job from inside the library.
  if (comm_ != MPI_COMM_NULL) MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

MpiComm::~MpiComm() { reset(); }

MpiComm::MpiComm(MpiComm&& other) noexcept
    : runtime_(std::move(other.runtime_)), comm_(std::exchange(other.comm_, MPI_COMM_NULL)) {}

MpiComm& MpiComm::operator=(MpiComm&& other) noexcept {
  if (this != &other) {
    reset();
    runtime_ = std::move(other.runtime_);
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
  }
  return *this;
}

void MpiComm::reset() {
  // MPI_Comm_free only marks the communicator for deletion: it does not wait for requests still
  // active on it (those of an aborted op), so this never blocks.
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  comm_ = MPI_COMM_NULL;
  runtime_.reset();  // last: MPI_Finalize, when this was the last MPI object, follows the free
}

MpiComm MpiComm::dup_world(std::shared_ptr<MpiRuntime> runtime) {
  MPI_Comm comm = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup", runtime->world_rank(),
            "creating a communicator over MPI_COMM_WORLD");
  return MpiComm(std::move(runtime), comm);
}

MpiComm MpiComm::dup() const {
  MPI_Comm comm = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(comm_, &comm), "MPI_Comm_dup", rank(), "duplicating a communicator");
  return MpiComm(runtime_, comm);
}

MpiComm MpiComm::create_group(const std::vector<int>& members) const {
  MPI_Group all = MPI_GROUP_NULL, some = MPI_GROUP_NULL;
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_group(comm_, &all);
  int rc = MPI_Group_incl(all, static_cast<int>(members.size()), members.data(), &some);
  // The tag only has to tell apart concurrent calls over overlapping groups: there are none,
  // since a communicator runs one split at a time and a split's groups are disjoint.
  if (rc == MPI_SUCCESS) rc = MPI_Comm_create_group(comm_, some, /*tag=*/0, &comm);
  MPI_Group_free(&all);
  if (some != MPI_GROUP_NULL) MPI_Group_free(&some);
  check_mpi(rc, "MPI_Comm_create_group", rank(), "splitting a communicator");
  return MpiComm(runtime_, comm);
}

int MpiComm::rank() const {
  int r = -1;
  if (comm_ != MPI_COMM_NULL) MPI_Comm_rank(comm_, &r);
  return r;
}

int MpiComm::size() const {
  int n = 0;
  if (comm_ != MPI_COMM_NULL) MPI_Comm_size(comm_, &n);
  return n;
}

}  // namespace weft::comm
