#pragma once
#include <chrono>

namespace weft {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline Deadline deadline_after(std::chrono::milliseconds d) { return Clock::now() + d; }

// A deadline that starts counting when it is first read, unless fixed up front: an op that ends
// without ever waiting reads no clock (a read costs about 27 ns here, a tenth of an 8-byte
// shared-memory allreduce). Copies count on their own.
class LazyDeadline {
 public:
  explicit LazyDeadline(Clock::duration timeout) : timeout_(timeout) {}
  // `timeout` from the first read, or `cap` (read then too) if that is sooner: a shorter wait
  // inside an op that must not outlast the op's own deadline. `cap` must outlive this.
  LazyDeadline(Clock::duration timeout, const LazyDeadline& cap) : timeout_(timeout), cap_(&cap) {}
  LazyDeadline(Deadline fixed) : at_(fixed), fixed_(true) {}  // NOLINT: implicit, a fixed one
  Deadline get() const { return fixed_ ? at_ : get(Clock::now()); }
  // get(), counting from `now` (a clock reading the caller already has) if not yet fixed.
  Deadline get(Clock::time_point now) const {
    if (!fixed_) {
      at_ = now + timeout_;
      if (cap_ != nullptr && cap_->get(now) < at_) at_ = cap_->get(now);
      fixed_ = true;
    }
    return at_;
  }

 private:
  Clock::duration timeout_{};
  const LazyDeadline* cap_ = nullptr;
  mutable Deadline at_{};
  mutable bool fixed_ = false;
};
inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
inline double ms_since(Clock::time_point t) { return seconds_since(t) * 1e3; }

}  // namespace weft
