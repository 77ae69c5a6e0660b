#pragma once
// StallNotices: how a point-to-point op that has waited a while for its messages tells the
// ranks it waits on, so that two ranks waiting on each other fail at once instead of at
// WEFT_TIMEOUT.
//
// After kPatience without its receives complete, an op posts one stall notice to each peer it
// receives from: a header-only message whose fingerprint is the receive (Fingerprint::stalled,
// wire.h's kFrameStall) and which carries the sender's last point-to-point send to that peer
// (SendLedger). It travels behind every message the op posted, so a peer that reads it in place
// of the message it waits for knows the sender had not posted that message; if the peer has not
// posted the message the sender waits for either, and is itself waiting (a receive from the
// sender, or a collective that reads from it), neither can go on: judge_notice fails it with
// InvalidArgument naming both calls, and its abort tells the sender. A notice that no longer
// holds (the peer has since sent what the sender waited for) is dropped where it is read.
//
// A notice only advises: once the op's receives have all completed it no longer holds, and one
// still unsent then (shm: the peer's mailbox is full of messages it has not read yet) is
// withdrawn (Transport::withdraw_notice), so that an op whose data all arrived never waits on
// its peers' later reads.
//
// An op that completes within kPatience sends nothing: its cost there is a few comparisons.
// Transports that cannot carry notices (Transport::carries_stall_notices: nccl) get none.
#include <array>
#include <cstddef>
#include <vector>

#include "comm/fingerprint.h"
#include "comm/transport.h"
#include "runtime/clock.h"

namespace weft::comm {

class StallNotices {
 public:
  // Long enough that an op still moving never sends one, short enough that a deadlock is
  // reported within a second (the peer's transport reads the notice within its poll cap).
  static constexpr auto kPatience = std::chrono::milliseconds(200);
  static constexpr size_t kMaxReceives = 64;  // kMaxExchange: a batch's receives

  // A receive of the op: from `peer`, as `fp` (which must outlive this) describes it. Only
  // point-to-point receives (OpKind::recv) are noted: a collective sends no notices. Nothing is
  // sent over a transport that does not carry notices (Transport::carries_stall_notices).
  void add(int peer, const Fingerprint* fp) {
    if (fp->op == OpKind::recv && count_ < kMaxReceives) receives_[count_++] = {peer, fp};
  }
  bool empty() const { return count_ == 0; }
  // What an op's first wait may sleep until, before it reads the clock: kPatience from when
  // the wait sleeps, or `deadline` if that is sooner. The patience counts from there (tick).
  const LazyDeadline& first_wait(const LazyDeadline& deadline) {
    first_wait_ = LazyDeadline(kPatience, deadline);
    waited_ = true;
    return first_wait_;
  }
  // Called between waits with the time just read: the first call starts the patience (unless
  // first_wait did), a call past it posts the notices, later ones test them.
  void tick(Transport& t, Clock::time_point now) {
    if (count_ == 0 || (!notices_.empty() && left_ == 0)) return;
    if (due_ == Clock::time_point{}) {
      if (!t.carries_stall_notices()) {
        count_ = 0;
        return;
      }
      due_ = waited_ ? first_wait_.get(now) : now + kPatience;
    }
    if (now >= due_ || !notices_.empty()) post_and_test(t);
  }
  // What the wait may sleep until: `deadline`, or the moment the notices are due.
  Deadline sleep_until(Deadline deadline) const {
    return notices_.empty() && due_ != Clock::time_point{} && due_ < deadline ? due_ : deadline;
  }
  // Once the op's receives have all completed: its notices no longer hold, and those not yet
  // sent are withdrawn (never waited for). Never blocks, never throws for a notice.
  void finish(Transport& t) {
    if (left_ > 0) withdraw(t);
  }

 private:
  void post_and_test(Transport& t);
  void withdraw(Transport& t);
  struct Receive {
    int peer;
    const Fingerprint* fp;
  };
  struct Notice {
    Fingerprint fp;
    Transport::Request request;
    bool sent;
  };
  // Left uninitialised (only [0, count_) is written): an op that never stalls pays nothing for
  // it.
  std::array<Receive, kMaxReceives> receives_;
  size_t count_ = 0;
  Clock::time_point due_{};
  LazyDeadline first_wait_{kPatience};
  bool waited_ = false;  // first_wait_ bounds the op's first wait
  std::vector<Notice> notices_;  // made once due
  size_t left_ = 0;              // notices not yet sent
};

}  // namespace weft::comm
