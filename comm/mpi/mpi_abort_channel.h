#pragma once
// MpiAbortChannel: how a rank tells the other ranks of an MPI communicator that it gave up
// (abort(), a mismatch, a timeout), so they fail at once naming it instead of waiting out their
// deadline. Open MPI has no such notice of its own: a rank that leaves a collective simply
// never sends.
//
// The channel is a private copy of the communicator. Every rank keeps one receive posted on it
// from any source; notify_peers() sends the reason to every other rank. Messages are small, so
// they go eagerly and the sends complete without the peers' help.
#include <mpi.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/mpi/mpi_comm.h"
#include "runtime/clock.h"
#include "runtime/error.h"

namespace weft::comm {

class MpiAbortChannel {
 public:
  static constexpr size_t kMaxReason = 1024;

  // Collective over `comm`'s ranks, until `deadline`.
  MpiAbortChannel(const MpiComm& comm, Deadline deadline);
  ~MpiAbortChannel();  // cancels the posted receive; waits at most 100 ms for the sends
  MpiAbortChannel(const MpiAbortChannel&) = delete;
  MpiAbortChannel& operator=(const MpiAbortChannel&) = delete;

  // Sends `reason` to every other rank, asking them to fail with `code`; only the first call
  // sends. Any thread.
  void notify_peers(const std::string& reason, ErrorCode code = ErrorCode::Aborted);
  // Once a peer's notice has arrived: "rank 2 aborted: <its reason>"; empty until then. Any
  // thread; cheap (one MPI_Test).
  std::string poll();
  // The code the notice asks for (Aborted until one has arrived).
  ErrorCode notice_code();

 private:
  MpiComm comm_;
  int rank_ = 0;
  std::mutex mu_;  // MPI forbids testing one request from two threads at once
  char inbox_[kMaxReason] = {};
  MPI_Request recv_ = MPI_REQUEST_NULL;
  std::string received_;
  ErrorCode received_code_ = ErrorCode::Aborted;
  std::unique_ptr<char[]> outbox_;
  size_t outbox_bytes_ = 0;
  std::vector<MPI_Request> sends_;
};

}  // namespace weft::comm
