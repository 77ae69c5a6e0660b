#pragma once
// Internal to kernels/cpu: split a kernel's independent work items over a few threads.
//
// For kernels whose calls take a millisecond or more and whose work splits into independent
// items (attention's (batch, head) pairs). Threads are started per call and joined before it
// returns: a thread start costs tens of microseconds, noise next to the work, and it keeps the
// kernels free of a global pool. No heap allocation beyond the threads themselves.
#include <algorithm>
#include <array>
#include <system_error>
#include <thread>

namespace weft::kernels::cpu::detail {

inline constexpr int kMaxKernelThreads = 64;

// Calls body(begin, end) on `threads` contiguous slices of [0, count): the caller runs the
// first slice, one short-lived thread each of the others. body must not throw. If a thread
// cannot be started, its slice runs on the caller instead.
template <typename Body>
void parallel_for(int count, int threads, const Body& body) {
  threads = std::clamp(std::min(threads, count), 1, kMaxKernelThreads);
  auto slice_begin = [&](int i) {
    return static_cast<int>(static_cast<long>(count) * i / threads);
  };
  std::array<std::jthread, kMaxKernelThreads> helpers;  // joined on scope exit
  for (int i = 1; i < threads; i++) {
    const int begin = slice_begin(i), end = slice_begin(i + 1);
    try {
      helpers[i] = std::jthread([&body, begin, end] { body(begin, end); });
    } catch (const std::system_error&) {
      body(begin, end);
    }
  }
  body(0, slice_begin(1));
}

}  // namespace weft::kernels::cpu::detail
