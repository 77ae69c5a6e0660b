#pragma once
// SignalWatch: turns asynchronous signals into readable events on a file descriptor
// (signalfd), so weftrun's single poll loop handles SIGCHLD, SIGINT, SIGTERM, ... in order
// with pipe output, without handlers. Construct it before starting any thread: threads
// inherit the blocked mask, so the signals are left pending for this fd instead of being
// delivered to some other thread. Children must unblock them before exec (RankProcess does).
#include <signal.h>
#include <sys/types.h>

#include <initializer_list>
#include <optional>

#include "runtime/unique_fd.h"

namespace weft::launcher {

class SignalWatch {
 public:
  struct Received {
    int signo = 0;
    pid_t sender = 0;  // for kill(2)-sent signals
  };

  explicit SignalWatch(std::initializer_list<int> signals);
  ~SignalWatch();  // restores the previous signal mask
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  int fd() const { return fd_.get(); }
  // The next pending signal, or nothing (never blocks).
  std::optional<Received> next();

 private:
  sigset_t previous_mask_{};
  UniqueFd fd_;
};

}  // namespace weft::launcher
