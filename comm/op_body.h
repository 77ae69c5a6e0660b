#pragma once
// OpBody: what an Executor runs for one op, called with the deadline the op must finish by
// (lazy: see LazyDeadline).
//
// A move-only callable like std::function, except that it never allocates: the callable lives
// inside the OpBody, and one that does not fit is a compile error. The communicator's op lambdas
// capture a few pointers and sizes; a heap allocation and free per op (std::function's, for
// anything over two pointers) cost more than the bookkeeping of an 8-byte allreduce on shared
// memory, whose whole budget is a few hundred nanoseconds.
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "runtime/clock.h"

namespace weft::comm {

class OpBody {
 public:
  static constexpr size_t kCapacity = 192;  // room for an op that may run in place (DirectSource)

  OpBody() = default;
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, OpBody>>>
  OpBody(F&& f) {  // NOLINT: implicit, like std::function
    using Fn = std::decay_t<F>;
    static_assert(sizeof(Fn) <= kCapacity, "op lambda captures too much: capture pointers");
    static_assert(alignof(Fn) <= alignof(std::max_align_t), "op lambda is over-aligned");
    static_assert(std::is_nothrow_move_constructible_v<Fn>, "op lambda must move without throwing");
    static_assert(std::is_invocable_v<Fn&, LazyDeadline>, "op lambda must take (LazyDeadline)");
    new (storage_) Fn(std::forward<F>(f));
    vtable_ = &kVtable<Fn>;
  }
  OpBody(OpBody&& o) noexcept { take(o); }
  OpBody& operator=(OpBody&& o) noexcept {
    if (this != &o) {
      reset();
      take(o);
    }
    return *this;
  }
  OpBody(const OpBody&) = delete;
  OpBody& operator=(const OpBody&) = delete;
  ~OpBody() { reset(); }

  explicit operator bool() const { return vtable_ != nullptr; }
  void operator()(LazyDeadline deadline) { vtable_->call(storage_, deadline); }
  // Destroys the callable (and what it captured).
  void reset() {
    if (vtable_ == nullptr) return;
    vtable_->destroy(storage_);
    vtable_ = nullptr;
  }

 private:
  struct Vtable {
    void (*call)(void*, LazyDeadline);
    void (*move)(void* to, void* from);  // move-constructs into `to`, destroys `from`
    void (*destroy)(void*);
  };
  template <typename Fn>
  static constexpr Vtable kVtable{
      [](void* p, LazyDeadline d) { (*static_cast<Fn*>(p))(d); },
      [](void* to, void* from) {
        new (to) Fn(std::move(*static_cast<Fn*>(from)));
        static_cast<Fn*>(from)->~Fn();
      },
      [](void* p) { static_cast<Fn*>(p)->~Fn(); }};

  void take(OpBody& o) noexcept {
    if (o.vtable_ == nullptr) return;
    o.vtable_->move(storage_, o.storage_);
    vtable_ = std::exchange(o.vtable_, nullptr);
  }

  alignas(std::max_align_t) std::byte storage_[kCapacity];
  const Vtable* vtable_ = nullptr;
};

}  // namespace weft::comm
