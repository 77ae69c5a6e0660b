#include "comm/mpi/mpi_abort_channel.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "comm/wire.h"

namespace weft::comm {
namespace {
constexpr int kAbortTag = 7;
constexpr auto kSendPatience = std::chrono::milliseconds(100);
}  // namespace

MpiAbortChannel::MpiAbortChannel(const MpiComm& comm, Deadline deadline)
    : comm_(comm.dup(deadline)), rank_(comm_.rank()) {
  check_mpi(MPI_Irecv(inbox_, sizeof inbox_, MPI_CHAR, MPI_ANY_SOURCE, kAbortTag, comm_.get(),
                      &recv_),
            "MPI_Irecv", rank_, "posting the abort notice receive");
}

MpiAbortChannel::~MpiAbortChannel() {
  std::lock_guard lock(mu_);
  if (recv_ != MPI_REQUEST_NULL) {
    // Cancelling a receive and waiting for it is local in MPI: it never waits for a peer.
    MPI_Cancel(&recv_);
    MPI_Wait(&recv_, MPI_STATUS_IGNORE);
  }
  // The notices are eager sends, done as soon as they are posted unless a peer's queue was full.
  Deadline until = Clock::now() + kSendPatience;
  for (;;) {
    int done = 1;
    if (!sends_.empty())
      MPI_Testall(static_cast<int>(sends_.size()), sends_.data(), &done, MPI_STATUSES_IGNORE);
    if (done) return;
    if (Clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // A peer that stopped reading: let MPI finish the sends on its own, and leave the text with it
  // (leaked on purpose, at most kMaxReason bytes, only on this failure path).
  for (MPI_Request& r : sends_)
    if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
  outbox_.release();
}

void MpiAbortChannel::notify_peers(const std::string& reason, ErrorCode code) {
  std::lock_guard lock(mu_);
  if (outbox_) return;  // the first failure is the one everybody reports
  // One byte of code (encode_abort_code), then the reason.
  outbox_bytes_ = 1 + std::min(reason.size(), kMaxReason - 1);
  outbox_ = std::make_unique<char[]>(outbox_bytes_ + 1);
  outbox_[0] = static_cast<char>(encode_abort_code(code));
  std::memcpy(outbox_.get() + 1, reason.data(), outbox_bytes_ - 1);
  int n = comm_.size();
  for (int peer = 0; peer < n; peer++) {
    if (peer == rank_) continue;
    MPI_Request r = MPI_REQUEST_NULL;
    // Best effort: a failed send leaves that peer to its own deadline.
    if (MPI_Isend(outbox_.get(), static_cast<int>(outbox_bytes_), MPI_CHAR, peer, kAbortTag,
                  comm_.get(), &r) == MPI_SUCCESS)
      sends_.push_back(r);
  }
}

std::string MpiAbortChannel::poll() {
  std::lock_guard lock(mu_);
  if (recv_ == MPI_REQUEST_NULL) return received_;
  int done = 0;
  MPI_Status status;
  if (MPI_Test(&recv_, &done, &status) != MPI_SUCCESS || !done) return received_;
  int bytes = 0;
  MPI_Get_count(&status, MPI_CHAR, &bytes);
  size_t text = bytes > 1 ? static_cast<size_t>(bytes) - 1 : 0;
  received_code_ = decode_abort_code(bytes > 0 ? static_cast<unsigned char>(inbox_[0]) : 0);
  received_ =
      "rank " + std::to_string(status.MPI_SOURCE) + " aborted: " + std::string(inbox_ + 1, text);
  return received_;
}

ErrorCode MpiAbortChannel::notice_code() {
  std::lock_guard lock(mu_);
  return received_code_;
}

}  // namespace weft::comm
