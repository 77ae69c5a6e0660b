#pragma once
// MpiRuntime: the process-wide MPI library, initialized once and finalized once.
//
// MPI is per process by nature (MPI_Init may run once, and MPI cannot be initialized again after
// MPI_Finalize), so this is the one process-wide object of weft's MPI code. Every MPI object
// weft owns (an MpiComm, hence every mpi transport, native backend and MPI rendezvous) holds a
// shared_ptr to it: MPI_Finalize runs when the last of them is gone, after the last
// communicator, whatever order the application drops them in.
//
// Threading: weft asks for MPI_THREAD_MULTIPLE. Each communicator drives its ops from its own
// executor thread, and DeviceMesh keeps several communicators busy at once; funnelling them
// through one MPI-owning thread would add two thread hand-offs to every small op and would
// serialize communicators that the application overlaps on purpose. Open MPI 4.1 with ob1/vader
// supports it at the cost of a few uncontended locks per call.
//
// An application that initializes MPI itself keeps calling MPI_Finalize itself, and must drop
// weft's communicators before it does.
//
// Only files compiled with MPI include this header (it includes mpi.h); init.cc reaches MPI
// through mpi_rendezvous.h, transport_setup.h and native_backend.h instead.
#include <mpi.h>

#include <atomic>
#include <memory>
#include <string>

#include "runtime/clock.h"
#include "runtime/dtype.h"

namespace weft::comm {

class MpiRuntime {
 public:
  // Initializes MPI with MPI_THREAD_MULTIPLE on first use; later calls share the same runtime.
  // When the application initialized MPI itself, weft uses it as it is (it must provide
  // MPI_THREAD_MULTIPLE) and leaves MPI_Finalize to the application. Throws Unavailable when MPI
  // was already finalized or gives too little thread support.
  static std::shared_ptr<MpiRuntime> acquire();

  // Frees weft's reduction ops, then, if weft initialized MPI, MPI_Finalize once every rank has
  // arrived here too (waiting at most WEFT_TIMEOUT).
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  // The MPI datatype that moves elements of `t` (f16 and bf16 travel as 16-bit units).
  static MPI_Datatype datatype(DType t);
  // The MPI reduction for (`t`, `op`). Predefined MPI ops where MPI knows the type; for f16 and
  // bf16 an op of weft's own that accumulates through kernels::cpu::reduce. avg maps to sum: the
  // caller divides once at the end with kernels::cpu::scale_down.
  MPI_Op reduce_op(DType t, ReduceOp op) const;

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }

  // Called when an MPI call or request was given up at its deadline and left to MPI (MPI can
  // cancel neither): MPI_Finalize would wait for it, so the runtime then leaves without it.
  void leave_call_running() { call_left_running_.store(true); }

 private:
  explicit MpiRuntime(bool owns_mpi);

  bool owns_mpi_;  // weft called MPI_Init_thread, so weft calls MPI_Finalize
  int world_rank_ = 0, world_size_ = 1;
  // User-defined ops for the 16-bit floats, indexed [bf16?][op]; sum, max, min, prod.
  MPI_Op half_ops_[2][4];
  MPI_Comm finalize_comm_ = MPI_COMM_NULL;  // the ranks' last barrier, before MPI_Finalize
  std::atomic<bool> call_left_running_{false};
};

// Polls `request` with MPI_Test until it completes (true) or `deadline` passes (false, the
// request still pending); sleeps between tests (IdleBackoff). False too when MPI_Test fails.
bool wait_for_request(MPI_Request& request, Deadline deadline);

// A duplicate of `comm` (MPI_Comm_idup, polled): Timeout at `deadline` naming `what`, the
// duplication then left to MPI. Collective over `comm`'s ranks.
MPI_Comm idup(MPI_Comm comm, Deadline deadline, int rank, const std::string& what);

// MPI's text for error code `rc`, for messages.
std::string mpi_error_text(int rc);
// Throws Error(Internal) "rank R: <call> failed in <what>: <MPI's text>" unless rc is success.
void check_mpi(int rc, const char* call, int rank, const std::string& what);

}  // namespace weft::comm
