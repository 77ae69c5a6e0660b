#include "tests/support/stall_cases.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "runtime/error.h"

namespace weft::testing {
namespace {

using comm::Communicator;
using namespace std::chrono_literals;

Tensor f32(std::vector<float>& v) { return Tensor::flat(v.data(), DType::f32, v.size()); }

// Runs `body` on this rank, counting its broken expectations (and any error) on stderr.
template <typename Body>
int run_case(Communicator& world, const char* name, Body&& body) {
  const std::string what = std::string(name) + " on rank " + std::to_string(world.rank()) +
                           " over " + world.backend();
  int failures = 0;
  auto expect = [&](bool ok, const std::string& why) {
    if (ok) return;
    std::fprintf(stderr, "UNEXPECTED %s: %s\n", what.c_str(), why.c_str());
    failures++;
  };
  try {
    world.barrier().wait();  // start together: rank 1's lateness counts from here
    body(expect);
  } catch (const Error& e) {
    expect(false, std::string("failed with ") + error_code_name(e.code()) + ": " + e.what());
  }
  return failures;
}

std::string first_of(const std::vector<float>& v) { return std::to_string(v.front()); }

}  // namespace

int run_late_sender(Communicator& world) {
  return run_case(world, "late sender", [&](auto& expect) {
    const int r = world.rank(), n = world.size(), peer = 1 - r;
    std::vector<float> mine(4, static_cast<float>(r + 1)), theirs(4, 0.0f);
    const std::vector<float> want(4, static_cast<float>(peer + 1));
    if (r < 2) {
      if (r == 0) {
        world.recv(f32(theirs), peer).wait();  // waits 0.5 s: its notice goes out
        world.send(f32(mine), peer).wait();
      } else {
        std::this_thread::sleep_for(500ms);
        world.send(f32(mine), peer).wait();
        world.recv(f32(theirs), peer).wait();  // finds the notice first: stale, dropped
      }
      expect(theirs == want, "recv got " + first_of(theirs));
      theirs.assign(4, 0.0f);
      if (r == 1) std::this_thread::sleep_for(500ms);
      world.send_recv(f32(mine), peer, f32(theirs), peer).wait();  // rank 0 waits again
      expect(theirs == want, "send_recv got " + first_of(theirs));
    }
    world.allreduce(f32(mine)).wait();
    const float sum = static_cast<float>(n * (n + 1) / 2);
    expect(mine == std::vector<float>(4, sum), "allreduce gave " + first_of(mine));
  });
}

int run_notice_behind_full_mailbox(Communicator& world) {
  constexpr int kQueued = 16;  // shm's mailbox slots per pair of ranks (shm_ring.h)
  return run_case(world, "notice behind a full mailbox", [&](auto& expect) {
    const int r = world.rank();
    std::vector<float> v(2, static_cast<float>(r + 1));
    if (r == 0) {
      std::vector<std::vector<float>> queued(kQueued);
      for (int i = 0; i < kQueued; i++) {
        queued[i].assign(2, static_cast<float>(100 + i));
        world.send(f32(queued[i]), 1).wait();
      }
      world.recv(f32(v), 1).wait();  // rank 1 is 0.5 s late: a notice is due, with no room
      expect(v[0] == 2.0f, "recv from rank 1 got " + first_of(v));
      world.send(f32(v), 2).wait();
    } else if (r == 1) {
      std::this_thread::sleep_for(500ms);
      world.send(f32(v), 0).wait();
      world.recv(f32(v), 2).wait();
      expect(v[0] == 2.0f, "recv from rank 2 got " + first_of(v));
      for (int i = 0; i < kQueued; i++) {
        world.recv(f32(v), 0).wait();
        expect(v[0] == static_cast<float>(100 + i),
               "queued message " + std::to_string(i) + " was " + first_of(v));
      }
    } else {
      world.recv(f32(v), 0).wait();
      world.send(f32(v), 1).wait();
    }
    world.barrier().wait();
  });
}

}  // namespace weft::testing
