#pragma once
// StoreAbortChannel: how the ranks of a group that meets through a Store tell each other "I
// failed, stop waiting for me". NCCL has no such message: a rank that aborts its communicator
// leaves its peers' kernels waiting for data until their own deadline. With the channel, a
// failing rank posts its reason in the store and the peers, which poll the channel while they
// wait on an op, fail within about kPollInterval naming the rank and its reason.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "comm/rendezvous/store.h"
#include "runtime/clock.h"

namespace weft::comm {

class StoreAbortChannel {
 public:
  // How often poll() asks the store: a round trip each time, so not on every wait-loop turn.
  static constexpr std::chrono::milliseconds kPollInterval{100};

  // `store` is scoped to the group (a PrefixStore), so groups do not hear each other.
  StoreAbortChannel(std::shared_ptr<Store> store, int rank);

  // Posts `reason` for every peer. Any thread; only the first call posts. Never throws (the
  // store may be what failed).
  void notify_peers(const std::string& reason) noexcept;
  // A peer's notice ("rank 2 aborted: ..."), or the job's death notice (a rank that died
  // without a word: see kRankLostKey), or "" when there is none. Asks the store at most
  // once per kPollInterval; returns "" at once otherwise. The op thread only.
  std::string poll();

 private:
  std::shared_ptr<Store> store_;
  int rank_;
  std::atomic<bool> notified_{false};
  Clock::time_point next_poll_{};
};

}  // namespace weft::comm
