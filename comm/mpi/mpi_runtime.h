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
// executor thread, and an application may keep several communicators busy at once; funnelling
// them through one MPI-owning thread would add two thread hand-offs to every small op and would
// serialize communicators that the application overlaps on purpose. Open MPI 4.1 with ob1/vader
// supports it at the cost of a few uncontended locks per call.
//
// An application that initializes MPI itself keeps calling MPI_Finalize itself, and must drop
// weft's communicators before it does.
//
// Only files compiled with MPI include this header (it includes mpi.h); init.cc reaches MPI
// through backends.h and mpi_rendezvous.h instead.
#include <mpi.h>

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

 private:
  explicit MpiRuntime(bool owns_mpi);

  bool owns_mpi_;  // weft called MPI_Init_thread, so weft calls MPI_Finalize
  int world_rank_ = 0, world_size_ = 1;
  // User-defined ops for the 16-bit floats, indexed [bf16?][op]; sum, max, min, prod.
  MPI_Op half_ops_[2][4];
  MPI_Comm finalize_comm_ = MPI_COMM_NULL;  // the ranks' last barrier, before MPI_Finalize
};

// MPI's text for error code `rc`, for messages.
std::string mpi_error_text(int rc);
// Throws Error(Internal) "rank R: <call> failed in <what>: <MPI's text>" unless rc is success.
void check_mpi(int rc, const char* call, int rank, const std::string& what);
// Tests `request` until it completes (true), or until `deadline` passes or MPI_Test fails
// (false), idling between tests (runtime/idle_backoff.h): how a non-blocking MPI call is waited
// for without outliving a deadline.
bool test_until(MPI_Request& request, Deadline deadline);

}  // namespace weft::comm
