#include "runtime/preemption.h"

#include <signal.h>

#include <atomic>

namespace weft {
namespace {

std::atomic<int> g_signal{0};  // a handler may touch only lock-free atomics
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int signo) {
  int none = 0;
  g_signal.compare_exchange_strong(none, signo);
}

}  // namespace

void catch_preemption_signals() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking reads and waits go on; the flag is read between steps
  for (int signo : {SIGTERM, SIGUSR1}) ::sigaction(signo, &action, nullptr);
}

int preemption_signal() { return g_signal.load(); }

}  // namespace weft
