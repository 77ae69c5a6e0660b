#include "launcher/signal_watch.h"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/error.h"

namespace weft::launcher {

SignalWatch::SignalWatch(std::initializer_list<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : signals) sigaddset(&mask, s);
  if (int rc = pthread_sigmask(SIG_BLOCK, &mask, &previous_mask_); rc != 0) {
    errno = rc;
    throw_errno("blocking signals for the signalfd");
  }
  fd_ = UniqueFd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd_.valid()) {
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
    errno = e;
    throw_errno("creating a signalfd");
  }
}

SignalWatch::~SignalWatch() {
  fd_.reset();
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
}

std::optional<SignalWatch::Received> SignalWatch::next() {
  signalfd_siginfo info{};
  for (;;) {
    ssize_t n = ::read(fd_.get(), &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) break;
    if (n < 0 && errno == EINTR) continue;
    return std::nullopt;  // EAGAIN: nothing pending
  }
  Received r;
  r.signo = static_cast<int>(info.ssi_signo);
  r.sender = static_cast<pid_t>(info.ssi_pid);
  return r;
}

}  // namespace weft::launcher
