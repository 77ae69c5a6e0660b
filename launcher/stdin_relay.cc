#include "launcher/stdin_relay.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace weft::launcher {

StdinRelay::StdinRelay(int from, UniqueFd to) : from_(from), to_(std::move(to)) {
  // `from` stays blocking: it is weftrun's stdin, whose file description the shell shares.
  ::fcntl(to_.get(), F_SETFL, ::fcntl(to_.get(), F_GETFL) | O_NONBLOCK);
}

pollfd StdinRelay::poll_entry() const {
  if (!to_.valid()) return {-1, 0, 0};
  if (written_ < pending_.size()) return {to_.get(), POLLOUT, 0};
  // A weftrun in the background (`&`, or Ctrl-Z then bg) leaves the terminal to the foreground
  // job: reading it would stop weftrun with SIGTTIN. The shell's fg sends SIGCONT, which wakes
  // weftrun's loop to ask again.
  if (::tcgetpgrp(from_) != ::getpgrp()) return {-1, 0, 0};
  return {from_, POLLIN, 0};
}

void StdinRelay::on_ready() {
  if (!to_.valid()) return;
  if (written_ < pending_.size()) {
    ssize_t n = ::write(to_.get(), pending_.data() + written_, pending_.size() - written_);
    if (n > 0) {
      written_ += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      finish();  // EPIPE: rank 0 is done reading
    }
    if (written_ == pending_.size()) {
      pending_.clear();
      written_ = 0;
    }
    return;
  }
  // Readable (poll said so): one read returns what there is, a line from a terminal.
  char buffer[4096];
  ssize_t n = ::read(from_, buffer, sizeof buffer);
  if (n > 0) {
    pending_.assign(buffer, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    finish();  // end of input (Ctrl-D)
  }
}

void StdinRelay::finish() {
  pending_.clear();
  written_ = 0;
  to_.reset();
}

}  // namespace weft::launcher
