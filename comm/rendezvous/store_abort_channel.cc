#include "comm/rendezvous/store_abort_channel.h"

#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {
// The reason is set before the count goes up, so a peer that sees the count can read it.
constexpr const char* kCountKey = "abort/count";
constexpr const char* kReasonKey = "abort/reason";
constexpr auto kReasonPatience = std::chrono::seconds(2);
}  // namespace

StoreAbortChannel::StoreAbortChannel(std::shared_ptr<Store> store, int rank)
    : store_(std::move(store)), rank_(rank) {}

void StoreAbortChannel::notify_peers(const std::string& reason) noexcept {
  if (!store_ || notified_.exchange(true)) return;
  try {
    store_->set(kReasonKey, "rank " + std::to_string(rank_) + " aborted: " + reason);
    store_->add(kCountKey, 1);
  } catch (const std::exception& e) {
    WEFT_WARN("rank " << rank_ << " could not tell its peers it aborted (" << e.what()
                      << "); they will fail at their deadline instead");
  }
}

std::string StoreAbortChannel::poll() {
  if (!store_ || notified_.load()) return "";  // this rank's own reason is already known
  Clock::time_point now = Clock::now();
  if (now < next_poll_) return "";
  next_poll_ = now + kPollInterval;
  try {
    // A rank that died without a word (SIGKILL) is in the job's death notice instead, posted
    // by the store as its connection closed, or by the launcher (see kRankLostKey).
    store_->check_members();
    if (store_->add(kCountKey, 0) == 0) return "";
    return store_->get(kReasonKey, Clock::now() + kReasonPatience);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::PeerLost) return e.what();
    return std::string("the rendezvous store failed while checking for peers' aborts: ") +
           e.what();
  }
}

}  // namespace weft::comm
