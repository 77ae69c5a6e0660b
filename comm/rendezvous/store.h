#pragma once
// Store: the small key-value service ranks rendezvous through (addresses, ids, barriers).
// Served by the job's coordinator (coordinator.h: in weftrun, weft-coordinator or rank 0), or in
// memory for a group within one process (store_memory.h).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/clock.h"

namespace weft::comm {

// The job's death notice. Once this key exists in a job's store, every get and wait that would
// still have to wait fails with PeerLost quoting it, so ranks that are still setting up stop at
// once instead of at their deadline. The coordinator sets it when a rank that joined
// (CoordinatorStore::join_as) stops beating or loses its connection before leaving; a launcher
// that sees a rank die sets it too (Coordinator::post_rank_lost). Only the first notice is kept.
// The key is outside every group's prefix: a lost rank ends the whole job.
inline constexpr const char* kRankLostKey = "weft/rank-lost";

// Commits a job's checkpoint steps (the job's coordinator does: coordinator.h). Each rank reports
// the shard it wrote; once every rank of the job has, the committer writes the step's manifest
// and moves LATEST (checkpoint/commit.h).
class CheckpointCommitter {
 public:
  virtual ~CheckpointCommitter() = default;
  // Reports this rank's shard of `step` in `dir` and waits until the step is committed, or the
  // deadline (Timeout). `report` is the rank's checkpoint::ShardReport as JSON, or {"error": why}
  // when the rank could not write its shard, which fails the step for every rank with `why`;
  // `job` is the manifest's description of the job (rank 0's counts); `keep`, the committed
  // steps to keep (0: all). PeerLost when the job loses a rank first (the step stays
  // uncommitted); Io naming the problem when the commit fails.
  virtual void commit_shard(const std::string& dir, int64_t step, int keep, const std::string& job,
                            const std::string& report, Deadline deadline) = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // Waits until `key` exists; Timeout (naming the key) at the deadline.
  virtual std::string get(const std::string& key, Deadline deadline) = 0;
  // Adds `delta` to the integer at `key` (absent = 0) and returns the new value.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  // Waits until every key exists; Timeout naming the missing ones at the deadline.
  virtual void wait(const std::vector<std::string>& keys, Deadline deadline) = 0;
  // Throws PeerLost quoting the job's death notice (kRankLostKey) when there is one. For set-up
  // loops that wait on something other than the store (a peer's connection); store waits fail
  // by themselves. A store inside one process has no ranks to lose.
  virtual void check_members() {}
  // Calls on_lost(notice) on a thread of the store's as soon as it hears that the job lost a
  // rank (the coordinator ends this rank's generation), so that a communicator waiting on its
  // peers in a transport, not in the store, stops at once instead of at its deadline. The
  // subscription lasts while the returned handle lives; dropping it waits for a call under way.
  // A store inside one process has no ranks to lose: no handle.
  virtual std::shared_ptr<void> watch_losses(std::function<void(const std::string&)> on_lost) {
    (void)on_lost;
    return nullptr;
  }
  // The job's checkpoint committer, where a coordinator serves this store; nullptr elsewhere (a
  // store in memory: the ranks then commit among themselves).
  virtual CheckpointCommitter* checkpoint_committer() { return nullptr; }
};

// Every key goes under "prefix/": sub-groups and sub-systems share one store without clashing.
class PrefixStore : public Store {
 public:
  PrefixStore(std::string prefix, std::shared_ptr<Store> base)
      : prefix_(std::move(prefix) + "/"), base_(std::move(base)) {}
  void set(const std::string& key, const std::string& value) override {
    base_->set(prefix_ + key, value);
  }
  std::string get(const std::string& key, Deadline d) override { return base_->get(prefix_ + key, d); }
  int64_t add(const std::string& key, int64_t delta) override { return base_->add(prefix_ + key, delta); }
  void wait(const std::vector<std::string>& keys, Deadline d) override {
    std::vector<std::string> full;
    full.reserve(keys.size());
    for (const auto& k : keys) full.push_back(prefix_ + k);
    base_->wait(full, d);
  }
  void check_members() override { base_->check_members(); }
  std::shared_ptr<void> watch_losses(std::function<void(const std::string&)> on_lost) override {
    return base_->watch_losses(std::move(on_lost));
  }
  CheckpointCommitter* checkpoint_committer() override { return base_->checkpoint_committer(); }

 private:
  std::string prefix_;
  std::shared_ptr<Store> base_;
};

}  // namespace weft::comm
