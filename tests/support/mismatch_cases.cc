#include "tests/support/mismatch_cases.h"

#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "runtime/clock.h"
#include "runtime/error.h"

namespace weft::testing {
namespace {

using comm::Communicator;

struct Case {
  const char* name;
  // Calls the op with this rank's arguments (`c` is the base count) on `a` and `b`, each of
  // 2c + 2 floats, and waits for it.
  std::function<void(Communicator&, int rank, size_t c, float* a, float* b)> run;
  // What every rank's message must contain: both ranks' values.
  std::function<std::vector<std::string>(size_t c)> names;
  // The backend on which the case is documented as not detected (README), or null.
  const char* not_on = nullptr;
};

Tensor f32(float* p, size_t n) { return Tensor::flat(p, DType::f32, n); }
std::string x(const char* dtype, size_t n) {
  return std::string(dtype) + " x " + std::to_string(n);
}
std::vector<std::string> counts(size_t a, size_t b) { return {x("f32", a), x("f32", b)}; }

// Rank 0 sends c f32 to rank 1, then enters a barrier; rank 1 receives into `received(a, c)`.
std::function<void(Communicator&, int, size_t, float*, float*)> send_f32_received_as(
    std::function<Tensor(float*, size_t)> received) {
  return [received](Communicator& m, int r, size_t c, float* a, float*) {
    if (r == 0) {
      m.send(f32(a, c), 1).wait();
      m.barrier().wait();
    } else {
      m.recv(received(a, c), 0).wait();
    }
  };
}

std::vector<Case> cases() {
  auto counts_c = [](size_t c) { return counts(c, c + 1); };
  return {
      {"allreduce count",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.allreduce(f32(a, c + r)).wait();
       },
       counts_c},
      {"allreduce dtype",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.allreduce(Tensor::flat(a, r == 0 ? DType::f32 : DType::i32, c)).wait();
       },
       [](size_t c) {
         return std::vector<std::string>{x("f32", c), x("i32", c)};
       }},
      {"allreduce op",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.allreduce(f32(a, c), r == 0 ? ReduceOp::sum : ReduceOp::max).wait();
       },
       [](size_t) {
         return std::vector<std::string>{"sum", "max"};
       }},
      {"allgather count",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.allgather(f32(a, c + r), f32(b, 2 * (c + r))).wait();
       },
       counts_c},
      {"reduce_scatter count",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.reduce_scatter(f32(a, 2 * (c + r)), f32(b, c + r)).wait();
       },
       counts_c},
      {"alltoall count",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.alltoall(f32(a, 2 * (c + r)), f32(b, 2 * (c + r))).wait();
       },
       [](size_t c) { return counts(2 * c, 2 * c + 2); }},
      {"broadcast count",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.broadcast(f32(a, c + r), 0).wait();
       },
       counts_c},
      {"broadcast root",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.broadcast(f32(a, c), r).wait();
       },
       [](size_t) {
         return std::vector<std::string>{"root 0", "root 1"};
       }},
      {"reduce count",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.reduce(f32(a, c + r), f32(b, c + r), 0).wait();
       },
       counts_c},
      {"reduce root",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.reduce(f32(a, c), f32(b, c), r).wait();
       },
       [](size_t) {
         return std::vector<std::string>{"root 0", "root 1"};
       }},
      // A send of a small message completes before the receiver looks at it: the sender hears
      // of the mismatch through its next op (here a barrier); a large one fails in the send.
      {"send/recv count", send_f32_received_as([](float* a, size_t c) { return f32(a, c + 1); }),
       counts_c},
      {"send/recv dtype",
       send_f32_received_as([](float* a, size_t c) { return Tensor::flat(a, DType::i32, c); }),
       [](size_t c) {
         return std::vector<std::string>{x("f32", c), x("i32", c)};
       }},
      // Each rank receives from the other first: neither sends until its receive ends. The stall
      // notices (comm/stall_notice.h) turn the wait into an error naming both receives.
      {"recv/recv peers",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         m.recv(f32(a, c), 1 - r).wait();
         m.send(f32(a, c), 1 - r).wait();
       },
       [](size_t c) {
         return std::vector<std::string>{"recv #1 (" + x("f32", c) + ", peer 0)",
                                         "recv #1 (" + x("f32", c) + ", peer 1)"};
       }},
      // A receive facing a collective: backend mpi runs the collective natively, where no
      // message of weft's reaches the receiver and no notice is read (README).
      {"recv/allreduce",
       [](Communicator& m, int r, size_t c, float* a, [[maybe_unused]] float* b) {
         if (r == 0)
           m.recv(f32(a, c), 1).wait();
         else
           m.allreduce(f32(a, c)).wait();
       },
       [](size_t c) {
         return std::vector<std::string>{"recv #1 (" + x("f32", c) + ", peer 1)",
                                         "allreduce #2 (" + x("f32", c) + ", sum)"};
       },
       "mpi"},
  };
}

}  // namespace

int run_mismatch_cases(Communicator& world, size_t elements) {
  int failures = 0;
  // One pair of buffers for every case, alive until the end: after a failed op MPI may still
  // read or write the buffers of its sends and receives (it cannot cancel them).
  std::vector<float> a(2 * elements + 2, 1.0f), b(2 * elements + 2);
  for (const Case& k : cases()) {
    if (k.not_on && std::string(world.backend()) == k.not_on) continue;
    std::unique_ptr<Communicator> comm = world.split(0, world.rank());
    const int r = comm->rank();
    comm->barrier().wait();  // start together: the patience counts from this rank's call
    std::string what = std::string(k.name) + " at " + std::to_string(elements * 4) +
                       " bytes on rank " + std::to_string(r) + " over " + comm->backend();
    auto fail = [&](const std::string& why) {
      std::fprintf(stderr, "MISMATCH %s: %s\n", what.c_str(), why.c_str());
      failures++;
    };
    Clock::time_point start = Clock::now();
    try {
      k.run(*comm, r, elements, a.data(), b.data());
      fail("completed without an error");
    } catch (const Error& e) {
      double s = std::chrono::duration<double>(Clock::now() - start).count();
      std::string message = e.what();
      if (e.code() != ErrorCode::InvalidArgument)
        fail(std::string("failed with ") + error_code_name(e.code()) + ": " + message);
      for (const std::string& name : k.names(elements))
        if (message.find(name) == std::string::npos)
          fail("the error does not name '" + name + "': " + message);
      if (s > std::chrono::duration<double>(kMismatchPatience).count())
        fail("the error came after " + std::to_string(s) + " s: " + message);
    }
    world.barrier().wait();  // the next case starts in step even if this one went wrong
  }
  return failures;
}

int run_crossed_receives(Communicator& world) {
  const int r = world.rank();
  std::string what = "crossed receives on rank " + std::to_string(r) + " over " + world.backend();
  int failures = 0;
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "MISMATCH %s: %s\n", what.c_str(), why.c_str());
    failures++;
  };
  float v[2] = {1, 2};
  Tensor t = f32(v, 2);
  world.barrier().wait();
  Clock::time_point start = Clock::now();
  try {
    if (r == 0) {
      world.send(t, 1).wait();
      world.barrier().wait();
    } else {
      world.recv(t, 3 - r).wait();
    }
    fail("completed without an error");
  } catch (const Error& e) {
    double s = std::chrono::duration<double>(Clock::now() - start).count();
    std::string message = e.what();
    if (e.code() != ErrorCode::InvalidArgument)
      fail(std::string("failed with ") + error_code_name(e.code()) + ": " + message);
    for (const char* name : {"recv #1 (f32 x 2, peer 2)", "recv #1 (f32 x 2, peer 1)"})
      if (message.find(name) == std::string::npos)
        fail(std::string("the error does not name '") + name + "': " + message);
    if (s > std::chrono::duration<double>(kMismatchPatience).count())
      fail("the error came after " + std::to_string(s) + " s: " + message);
    std::printf("rank %d caught after %.2f s: %s\n", r, s, message.c_str());
  }
  return failures;
}

}  // namespace weft::testing
