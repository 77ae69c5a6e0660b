#pragma once
// Store: the small key-value service ranks rendezvous through (addresses, ids, barriers).
// Served over TCP by weftrun or by rank 0 (store_tcp.h), or in memory for a group within one
// process (store_memory.h).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/clock.h"

namespace weft::comm {

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

 private:
  std::string prefix_;
  std::shared_ptr<Store> base_;
};

}  // namespace weft::comm
