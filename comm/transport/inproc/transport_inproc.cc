#include "comm/transport/inproc/transport_inproc.h"

#include <cstring>
#include <unordered_map>

#include "runtime/error.h"

namespace weft::comm {

InprocHub::InprocHub(int size)
    : size_(size), queues_(static_cast<size_t>(size) * size), closed_(size, false) {}

std::shared_ptr<InprocHub> InprocHub::group(const std::string& tag, int size) {
  std::lock_guard lock(mu_);
  auto& g = groups_[tag];
  if (!g) g = std::make_shared<InprocHub>(size);
  return g;
}

// Sends copy into the hub at once (buffered, like a socket), so a send never waits for the
// receiver; receives complete when a matching message is at the head of the peer's queue.
class InprocTransport : public Transport {
 public:
  InprocTransport(std::shared_ptr<InprocHub> hub, int rank) : hub_(std::move(hub)), rank_(rank) {}
  ~InprocTransport() override {
    std::lock_guard lock(hub_->mu_);
    hub_->closed_[rank_] = true;
    hub_->generation_++;
    hub_->cv_.notify_all();
  }

  int rank() const override { return rank_; }
  int size() const override { return hub_->size(); }
  const char* name() const override { return "inproc"; }
  bool carries_stall_notices() const override { return true; }

  Request isend(int peer, const void* data, size_t bytes, const Fingerprint& fp) override {
    InprocHub::Message m{ledger_.header(fp, bytes, peer), {}};
    m.payload.assign(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
    std::lock_guard lock(hub_->mu_);
    hub_->queues_[rank_ * size() + peer].push_back(std::move(m));
    hub_->generation_++;
    hub_->cv_.notify_all();
    Request id = next_++;
    pending_[id] = Pending{peer, false, nullptr, 0, fp, true, nullptr};
    return id;
  }

  Request irecv(int peer, void* data, size_t bytes, const Fingerprint& fp) override {
    Request id = next_++;
    pending_[id] = Pending{peer, true, data, bytes, fp, false, nullptr};
    order_.push_back(id);
    return id;
  }

  bool test(Request r) override {
    progress();
    Pending& p = pending_.at(r);
    if (!p.done && !p.error) return false;
    auto error = p.error;
    pending_.erase(r);
    if (error) std::rethrow_exception(error);
    return true;
  }

  // A send is delivered when posted: there is nothing to take back.
  void withdraw_notice(Request r) override { pending_.erase(r); }

  void wait_for_progress(const LazyDeadline& until) override {
    // A request completed by an earlier progress pass but not yet retired needs no sleep.
    for (auto& entry : pending_)
      if (entry.second.done || entry.second.error) return;
    // Sleeps until something changed since progress() last looked, so no wake-up is lost.
    std::unique_lock lock(hub_->mu_);
    hub_->cv_.wait_until(lock, until.get(), [&] { return hub_->generation_ != seen_generation_; });
  }

  void abort(const std::string& reason) override { abort_with(ErrorCode::Aborted, reason); }
  void abort_with(ErrorCode code, const std::string& reason) override {
    std::lock_guard lock(hub_->mu_);
    if (hub_->aborted_by_ < 0) {
      hub_->aborted_by_ = rank_;
      hub_->abort_reason_ = reason;
      hub_->abort_code_ = code;
    }
    hub_->generation_++;
    hub_->cv_.notify_all();
  }

 private:
  struct Pending {
    int peer;
    bool is_recv;
    void* data;
    size_t bytes;
    Fingerprint fp;
    bool done;
    std::exception_ptr error;
  };

  // Completes receives in posting order per peer (FIFO); fails them on abort or a closed peer.
  void progress() {
    std::lock_guard lock(hub_->mu_);
    seen_generation_ = hub_->generation_;
    for (auto it = order_.begin(); it != order_.end();) {
      Pending& p = pending_.at(*it);
      auto& q = hub_->queues_[p.peer * size() + rank_];
      if (hub_->aborted_by_ >= 0) {
        p.error = std::make_exception_ptr(
            Error(hub_->abort_code_, hub_->aborted_by_ == rank_
                                         ? hub_->abort_reason_
                                         : "rank " + std::to_string(hub_->aborted_by_) +
                                               " aborted: " + hub_->abort_reason_));
      } else if (!q.empty()) {
        try {
          const FrameHeader& h = q.front().header;
          if (is_stall_notice(h)) {  // dropped once it no longer holds (stall_notice.h)
            judge_notice(h, p.fp, ledger_.sent(p.peer), rank_, p.peer, name());
            q.pop_front();
            continue;
          }
          check_frame(h, p.fp, p.bytes, rank_, p.peer, name());
          if (p.bytes) std::memcpy(p.data, q.front().payload.data(), p.bytes);
          p.done = true;
        } catch (const Error&) {
          p.error = std::current_exception();
        }
        q.pop_front();
      } else if (hub_->closed_[p.peer]) {
        p.error = std::make_exception_ptr(
            Error(ErrorCode::PeerLost, "rank " + std::to_string(p.peer) +
                                           " lost: its transport closed while rank " +
                                           std::to_string(rank_) + " was receiving " +
                                           p.fp.describe()));
      } else {
        ++it;
        continue;
      }
      it = order_.erase(it);
    }
  }

  std::shared_ptr<InprocHub> hub_;
  int rank_;
  SendLedger ledger_{hub_->size()};  // what stall notices from the peers are judged by
  Request next_ = 1;
  uint64_t seen_generation_ = 0;
  std::unordered_map<Request, Pending> pending_;
  std::deque<Request> order_;  // pending receives, oldest first
};

std::unique_ptr<Transport> make_inproc_transport(std::shared_ptr<InprocHub> hub, int rank) {
  return std::make_unique<InprocTransport>(std::move(hub), rank);
}

}  // namespace weft::comm
