#pragma once
// MpiComm: an owned MPI communicator (move-only; MPI_Comm_free on destruction) that keeps the
// MPI runtime alive for as long as it exists, so MPI_Finalize always comes after it.
#include <mpi.h>

#include <memory>
#include <vector>

#include "comm/mpi/mpi_runtime.h"

namespace weft::comm {

class MpiComm {
 public:
  MpiComm() = default;
  MpiComm(std::shared_ptr<MpiRuntime> runtime, MPI_Comm comm);  // takes ownership of `comm`
  ~MpiComm();
  MpiComm(MpiComm&& other) noexcept;
  MpiComm& operator=(MpiComm&& other) noexcept;
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;

  // Each of these is collective and waits for the other ranks until `deadline`, then throws
  // Timeout naming the call; what MPI has not finished by then is left to it (MPI cancels
  // neither), and the runtime then leaves without MPI_Finalize, which would wait for it.
  //
  // A private copy of MPI_COMM_WORLD. Collective over the whole job.
  static MpiComm dup_world(std::shared_ptr<MpiRuntime> runtime, Deadline deadline);
  // A private copy of this communicator (its own message space). Collective over its ranks.
  MpiComm dup(Deadline deadline) const;
  // A communicator of the ranks `members` (ranks of this one, in the new order). Collective over
  // the members only, so ranks outside the group need not take part.
  MpiComm create_group(const std::vector<int>& members, Deadline deadline) const;
  // MPI_Comm_split: ranks with the same color (MPI_UNDEFINED: none, an empty MpiComm) ordered by
  // (key, rank). Collective over this communicator.
  MpiComm split(int color, int key, Deadline deadline) const;

  // Leaves the communicator to MPI, never to be freed: for one that a failed op's request (which
  // MPI cannot cancel) still uses. Open MPI 4.1 goes on progressing such a request and, once the
  // communicator is freed, crashes in it (libnbc's next round, in mca_pml_ob1_isend).
  void abandon() noexcept { comm_ = MPI_COMM_NULL; }

  MPI_Comm get() const { return comm_; }
  explicit operator bool() const { return comm_ != MPI_COMM_NULL; }
  int rank() const;
  int size() const;
  const std::shared_ptr<MpiRuntime>& runtime() const { return runtime_; }

 private:
  void reset();
  std::shared_ptr<MpiRuntime> runtime_;
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace weft::comm
