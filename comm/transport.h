#pragma once
// Transport: non-blocking point-to-point verbs, polled by one progress engine (the
// communicator's worker, or the caller's thread when it runs an op inline).
//
// Contract every implementation keeps:
//  - Messages between two ranks arrive in the order they were posted (per-peer FIFO), and a
//    recv is posted with exactly the byte count the peer sends. A differing size or
//    Fingerprint fails the recv with InvalidArgument naming both ranks' values.
//  - isend/irecv/test/wait_for_progress are called from one thread at a time.
//    abort() may be called from any thread, any number of times.
//  - A peer that dies fails every pending and later request that involves it with PeerLost
//    naming that rank, within seconds, and failed requests never block.
//  - Idle waiting sleeps (poll, futex), it does not spin for more than a few microseconds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "comm/fingerprint.h"
#include "runtime/clock.h"
#include "runtime/error.h"

namespace weft::comm {

class DirectAccess;  // comm/direct_access.h
class StallNotices;  // comm/stall_notice.h

class Transport {
 public:
  using Request = uint64_t;

  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;
  // Whether a rank that both sends and receives (send_recv) should post its receive first.
  // MPI: yes, a message over the eager limit goes through a rendezvous that completes sooner
  // when the receive is already posted. Shared memory: no, looking for the incoming message
  // before sending delays the send (see send_recv).
  virtual bool receive_first() const { return false; }
  // Whether isend/irecv take GPU memory as it is (nccl): the algorithms then work on CUDA
  // tensors in place (BufferOps on the GPU) instead of on host copies of them.
  virtual bool moves_device_memory() const { return false; }
  // Whether this transport carries stall notices (comm/stall_notice.h) and judges its peers'.
  // Not nccl: its batches move one at a time, so a notice would wait behind the very receive
  // it reports.
  virtual bool carries_stall_notices() const { return false; }
  // Registered memory and collectives that work on it in place (shm), or null.
  virtual DirectAccess* direct_access() { return nullptr; }

  // Start moving `bytes` to / from `peer`. Never blocks; the buffer must stay valid (and, for
  // sends, unchanged) until test() reports completion. Zero-byte messages are allowed.
  virtual Request isend(int peer, const void* data, size_t bytes, const Fingerprint& fp) = 0;
  virtual Request irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) = 0;

  // Makes whatever progress is possible without blocking. Returns true once `r` has completed
  // (the request is then retired and must not be tested again). Throws weft::Error when `r`
  // failed.
  virtual bool test(Request r) = 0;
  // Gives up a stall notice (an isend whose Fingerprint::stalled is set) that its op no longer
  // needs: the caller tests `r` no more. A notice none of which has gone is dropped; one partly
  // written to a stream is finished like any send, ahead of the messages posted after it, and
  // then retired by the transport itself; one already done or failed is retired. Never blocks.
  // Only transports that carry stall notices (carries_stall_notices) are asked.
  virtual void withdraw_notice(Request r) {
    (void)r;
    throw Error(ErrorCode::Internal,
                std::string(name()) + " was asked to withdraw a stall notice it cannot carry");
  }

  // Sleeps until some posted request may be able to progress or `until` passes (read only
  // once it must sleep, so a quick reply costs no clock read). Returns at
  // once while a request that an earlier test() call completed (as a side effect of testing
  // another) is not yet retired. May return early for no reason; callers loop on test().
  virtual void wait_for_progress(const LazyDeadline& until) = 0;

  // Fails every pending and future request with Aborted carrying `reason`, and tells the
  // peers so they fail too instead of waiting for their timeout.
  virtual void abort(const std::string& reason) = 0;
  // After an op failed and the transport was aborted: returns once no request of it can still
  // write into the op's buffers, or after a short patience, so that the caller may free them.
  // A transport that moves bytes only inside its own calls (tcp, shm) has nothing to wait for;
  // a library that keeps moving posted receives on its own (MPI) cancels them and waits.
  virtual void quiesce() {}
  // Messages this rank sent or received with one copy straight between the ranks' buffers
  // (shm: process_vm_readv) instead of through the transport's own buffers: how a benchmark
  // tells which path ran. Any thread may ask.
  virtual uint64_t single_copy_messages() const { return 0; }
  // abort(), except that this rank's requests and the peers' fail with `code`: ranks that
  // disagree on a collective all fail with InvalidArgument, also those that heard of it from
  // the rank that saw it. A transport that cannot tell its peers a code leaves them Aborted.
  virtual void abort_with(ErrorCode code, const std::string& reason) {
    (void)code;
    abort(reason);
  }
};

// What the peers of a rank that failed with `code` fail with (abort_with): a mismatch is every
// rank's InvalidArgument; anything else (a timeout, a lost rank) leaves them Aborted, naming it.
inline ErrorCode code_for_peers(ErrorCode code) {
  return code == ErrorCode::InvalidArgument ? code : ErrorCode::Aborted;
}

// Polls `r` to completion. On the deadline, throws Timeout naming this rank, `peer` and `what`.
// A point-to-point op passes its `notices`, sent once it has waited long (stall_notice.h).
void wait(Transport& t, Transport::Request r, Deadline deadline, int peer, const Fingerprint& fp,
          StallNotices* notices = nullptr);

}  // namespace weft::comm
