#include "comm/stall_notice.h"

namespace weft::comm {

void StallNotices::post_and_test(Transport& t) {
  if (notices_.empty()) {
    notices_.reserve(count_);
    for (size_t i = 0; i < count_; i++) {
      Notice& n = notices_.emplace_back(Notice{*receives_[i].fp, 0, false});
      n.fp.stalled = true;
      n.request = t.isend(receives_[i].peer, nullptr, 0, n.fp);
    }
    left_ = count_;
  }
  for (Notice& n : notices_) {
    if (n.sent) continue;
    // A notice only advises: one that cannot go (the peer has gone, or aborted) leaves the op's
    // own messages to report what happened.
    bool done = true;
    try {
      done = t.test(n.request);
    } catch (const Error&) {
    }
    if (done) {
      n.sent = true;
      left_--;
    }
  }
}

void StallNotices::withdraw(Transport& t) {
  for (Notice& n : notices_) {
    if (n.sent) continue;
    try {
      t.withdraw_notice(n.request);
    } catch (const Error&) {  // advice only (post_and_test): the op's own data has all arrived
    }
    n.sent = true;
  }
  left_ = 0;
}

}  // namespace weft::comm
