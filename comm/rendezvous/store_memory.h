#pragma once
// A Store inside one process: what a group of one rank started without any launcher meets
// through (NCCL's unique id goes through it as it would through weftrun's store), and tests.
#include <condition_variable>
#include <map>
#include <mutex>

#include "comm/rendezvous/store.h"
#include "runtime/error.h"

namespace weft::comm {

class MemoryStore : public Store {
 public:
  void set(const std::string& key, const std::string& value) override {
    std::lock_guard lock(mu_);
    kv_[key] = value;
    changed_.notify_all();
  }
  std::string get(const std::string& key, Deadline deadline) override {
    wait({key}, deadline);
    std::lock_guard lock(mu_);
    return kv_[key];
  }
  int64_t add(const std::string& key, int64_t delta) override {
    std::lock_guard lock(mu_);
    std::string& v = kv_[key];
    int64_t n = (v.empty() ? 0 : std::stoll(v)) + delta;
    v = std::to_string(n);
    changed_.notify_all();
    return n;
  }
  void wait(const std::vector<std::string>& keys, Deadline deadline) override {
    std::unique_lock lock(mu_);
    auto all_there = [&] {
      for (const auto& k : keys)
        if (!kv_.count(k)) return false;
      return true;
    };
    if (!changed_.wait_until(lock, deadline, all_there))
      throw Error(ErrorCode::Timeout, "memory store: timed out waiting for " + keys.front());
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::string> kv_;
};

}  // namespace weft::comm
