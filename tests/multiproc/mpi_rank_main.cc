// One rank of the MPI tests, started by mpirun (see mpi_test.cc):
//
//   mpirun -np 3 mpi_rank_main --backend mpi --scenario matrix
//
// It builds its communicator with init_from_env() (no store, no weftrun), runs one scenario and
// exits 0 when everything it checked held; failures are printed as "MISMATCH ..." or
// "UNEXPECTED ..." lines for the driver to show.
//
// Scenarios:
//   matrix    every collective x dtype x reduce op on counts 0, 1, 7, 1001 against the
//             sequential reference, with tiny algorithm thresholds so pipelines run many slices;
//             split (with a reversed key and a rank that opts out); then, on a second world
//             communicator with default settings, allreduce of 4 Mi + 3 f32 elements.
//   quick     the matrix on f32 and bf16 only, and no large size (tcp/shm under mpirun).
//   batch-p2p batch_p2p around the ring, 16 MiB to and from each neighbour in one batch (which
//             send-then-recv would deadlock: MPI completes large sends only as they are
//             received), then send_recv beside plain send/recv (check_batch_p2p).
//   kill      allreduce in a loop; the last rank SIGKILLs itself after iteration 4.
//   mismatch  rank 1 allreduces 999 elements, the others 1000: every rank must fail with
//             InvalidArgument (or Aborted, from the rank that noticed first).
//   mismatch-table-8B, mismatch-table-16MiB
//             two ranks: every op x every argument that must agree (mismatch_cases.h), each
//             rank failing every case with InvalidArgument naming both values within 2 s.
//   mismatch-table-edges
//             the same table at 16, 32 and 64 KiB: for some op at each size one rank's data
//             fits backend mpi's overlapped agreement (native_mpi.cc, kOverlapBytes) and the
//             other's does not, so one rank has started the op when the other learns the
//             mismatch.
//   mismatch-after
//             two ranks: after a mismatched allreduce, the next op on that communicator fails on
//             both ranks within 2 s (it is unusable now), and the world communicator, from which
//             it was split, still sums correctly.
//   crossed-receives
//             three ranks: rank 0 sends to 1, ranks 1 and 2 receive from each other; every rank
//             must fail with InvalidArgument naming both receives within 2 s
//             (run_crossed_receives in mismatch_cases.h).
//   late-sender, notice-behind-full-mailbox
//             three ranks: point-to-point waits that are no deadlock (stall_cases.h) complete
//             with the right data, whatever stall notices they send.
//   abort     rank 0 calls abort(); the others, waiting in an allreduce, must fail with Aborted
//             naming rank 0 within 10 seconds.
//   idle      rank 0 joins an allreduce 1.5 s late; the others must wait for it asleep, using
//             under a quarter of a core (the suite runs more ranks than cores).
//   error     init_from_env() must fail; prints "EXPECTED ERROR <what()>" and exits 0.
//   late-peer two ranks; rank 1 comes to each of MPI_Comm_idup (MpiComm::dup), MPI_Comm_split
//             (the native backend's split) and MPI_Comm_create_group (mpi-ring's split) 3 s
//             late: rank 0 must give up on each at its 1 s deadline with Timeout. (Rank 0 then
//             leaves without MPI_Finalize, which would wait for the calls it gave up on.)
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi/mpi_comm.h"
#include "runtime/buffer.h"
#include "runtime/clock.h"
#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/mismatch_cases.h"
#include "tests/support/stall_cases.h"

namespace weft::testing {
namespace {

struct Args {
  std::string backend;
  std::string scenario = "matrix";
};

int report(const std::vector<std::string>& failures) {
  for (const auto& f : failures) std::fprintf(stderr, "MISMATCH %s\n", f.c_str());
  return failures.empty() ? 0 : 3;
}

// Ranks split by parity with a reversed key (so new ranks run backwards), then again with rank 0
// opting out; each sub-group allreduces and checks its answer.
std::vector<std::string> check_split(comm::Communicator& world) {
  std::vector<std::string> failures;
  int r = world.rank(), n = world.size();
  auto parity = world.split(r % 2, -r);
  int members = (n - r % 2 + 1) / 2;
  int expected_rank = 0;
  for (int o = n - 1; o > r; o--) expected_rank += (o % 2 == r % 2);
  if (!parity || parity->size() != members || parity->rank() != expected_rank) {
    failures.push_back("rank " + std::to_string(r) + " split by parity: got rank " +
                       std::to_string(parity ? parity->rank() : -1) + " of " +
                       std::to_string(parity ? parity->size() : 0) + ", expected " +
                       std::to_string(expected_rank) + " of " + std::to_string(members));
    return failures;
  }
  auto f = check_allreduce(*parity, 7, DType::f32, ReduceOp::sum);
  failures.insert(failures.end(), f.begin(), f.end());

  auto without_zero = world.split(r == 0 ? -1 : 0, r);
  if ((r == 0) != (without_zero == nullptr)) {
    failures.push_back("rank " + std::to_string(r) + ": split with color -1 on rank 0 only");
  } else if (without_zero) {
    f = check_allreduce(*without_zero, 1001, DType::bf16, ReduceOp::avg);
    failures.insert(failures.end(), f.begin(), f.end());
    // The sub-group also carries point-to-point traffic of its own.
    f = check_collectives(*without_zero, CheckMatrix{{3}, {DType::i32}, {ReduceOp::max}});
    failures.insert(failures.end(), f.begin(), f.end());
  }
  return failures;
}

int run_matrix(const Args& a, bool quick) {
  std::vector<std::string> failures;
  {
    // Tiny thresholds so both allreduce algorithms and many pipeline slices run at these sizes.
    setenv("WEFT_SMALL_BYTES", "256", 1);
    setenv("WEFT_SEGMENT_BYTES", "256", 1);
    auto comm = comm::init_from_env(a.backend);
    CheckMatrix m;
    if (quick) m.dtypes = {DType::f32, DType::bf16};
    failures = check_collectives(*comm, m);
    auto f = check_split(*comm);
    failures.insert(failures.end(), f.begin(), f.end());
    unsetenv("WEFT_SMALL_BYTES");
    unsetenv("WEFT_SEGMENT_BYTES");
    if (!quick) {
      // A second world communicator, alive at the same time, with default settings.
      auto big = comm::init_from_env(a.backend);
      size_t count = (size_t{4} << 20) + 3;  // not divisible by 2, 3 or 4
      f = check_allreduce(*big, count, DType::f32, ReduceOp::sum);
      failures.insert(failures.end(), f.begin(), f.end());
      comm->barrier().wait();
    }
  }
  if (failures.empty()) std::printf("matrix passed\n");
  return report(failures);
}

int run_kill(const Args& a) {
  auto comm = comm::init_from_env(a.backend);
  Buffer buf(1 << 20);
  int victim = comm->size() - 1;
  for (int i = 0;; i++) {
    comm->allreduce(buf.view(DType::f32, (1 << 20) / 4)).wait();
    if (i == 3) {
      std::printf("iteration 3 done by rank %d\n", comm->rank());
      std::fflush(stdout);
    }
    // One allreduce later: its finishing on the victim shows that every rank had printed
    // (finishing iteration 3 on one rank does not mean the others had got its last chunk).
    if (i == 4 && comm->rank() == victim) raise(SIGKILL);
  }
}

// Runs `body`, expecting a weft::Error with one of `codes` within `limit_s`; 0 when it came.
template <typename Body>
int expect_failure(int rank, Body body, std::vector<ErrorCode> codes, double limit_s) {
  Clock::time_point start = Clock::now();
  try {
    body();
  } catch (const Error& e) {
    double took = seconds_since(start);
    std::printf("rank %d caught after %.2f s: %s\n", rank, took, e.what());
    std::fflush(stdout);
    for (ErrorCode c : codes)
      if (e.code() == c) return took < limit_s ? 0 : 4;
    return 5;
  }
  std::printf("UNEXPECTED rank %d: no error\n", rank);
  return 6;
}

int run_mismatch(const Args& a) {
  auto comm = comm::init_from_env(a.backend);
  int r = comm->rank();
  size_t count = r == 1 ? 999 : 1000;
  Buffer buf(count * 4);
  return expect_failure(
      r, [&] { comm->allreduce(buf.view(DType::f32, count)).wait(); },
      {ErrorCode::InvalidArgument, ErrorCode::Aborted}, 10);
}

int run_mismatch_after(const Args& a) {
  auto world = comm::init_from_env(a.backend);
  const int r = world->rank();
  int failures = 0;
  {
    auto comm = world->split(0, r);
    size_t count = r == 0 ? 5 : 6;
    std::vector<float> data(6, 1.0f);  // alive until the end: MPI may still touch it
    failures += expect_failure(
        r, [&] { comm->allreduce(Tensor::flat(data.data(), DType::f32, count)).wait(); },
        {ErrorCode::InvalidArgument}, 2);
    failures += expect_failure(
        r, [&] { comm->allreduce(Tensor::flat(data.data(), DType::f32, 5)).wait(); },
        {ErrorCode::InvalidArgument, ErrorCode::Aborted}, 2);
  }
  std::vector<float> sum(3, static_cast<float>(r + 1));
  world->allreduce(Tensor::flat(sum.data(), DType::f32, sum.size())).wait();
  const float expected = static_cast<float>(world->size() * (world->size() + 1) / 2);
  for (float v : sum)
    if (v != expected) {
      std::printf("UNEXPECTED rank %d: world allreduce gave %g, expected %g\n", r, v, expected);
      failures++;
    }
  if (failures == 0) std::printf("mismatch-after passed\n");
  return failures == 0 ? 0 : 3;
}

int run_late_peer() {
  using namespace std::chrono_literals;
  auto runtime = comm::MpiRuntime::acquire();
  // A communicator per call, made while both ranks are here: a call rank 0 gave up on is still
  // pending in MPI, and the next must not share its communicator.
  std::vector<comm::MpiComm> comms;
  for (int i = 0; i < 4; i++)
    comms.push_back(comm::MpiComm::dup_world(runtime, deadline_after(30s)));
  const int r = comms[0].rank();
  int failures = 0;
  auto step = [&](const char* name, const comm::MpiComm& on, auto call) {
    if (r == 1) {
      std::this_thread::sleep_for(3s);
      call(on, deadline_after(30s));
      std::printf("rank 1 finished %s late\n", name);
      return;
    }
    std::printf("rank 0 in %s: ", name);
    failures += expect_failure(
        0, [&] { call(on, deadline_after(1s)); }, {ErrorCode::Timeout}, 2.5);
  };
  step("dup", comms[0], [](const comm::MpiComm& c, Deadline d) { c.dup(d); });
  step("split", comms[1], [r](const comm::MpiComm& c, Deadline d) { c.split(0, r, d); });
  step("create_group", comms[2], [](const comm::MpiComm& c, Deadline d) {
    c.create_group({0, 1}, d);
  });
  // Rank 0 waits for rank 1's late calls, which complete its own abandoned ones, then both go.
  MPI_Barrier(comms[3].get());
  return failures;
}

int run_abort(const Args& a) {
  auto comm = comm::init_from_env(a.backend);
  int r = comm->rank();
  comm->barrier().wait();
  if (r == 0) {
    usleep(200'000);  // let the others get into their allreduce
    comm->abort("rank 0 gave up on purpose");
    std::printf("rank 0 aborted\n");
    return 0;
  }
  Buffer buf(4096);
  return expect_failure(
      r, [&] { comm->allreduce(buf.view(DType::f32, 1024)).wait(); }, {ErrorCode::Aborted}, 10);
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

int run_idle(const Args& a) {
  auto comm = comm::init_from_env(a.backend);
  int r = comm->rank();
  comm->barrier().wait();
  Buffer buf(4096);
  if (r == 0) usleep(1'500'000);
  Clock::time_point start = Clock::now();
  double cpu_before = cpu_seconds();
  comm->allreduce(buf.view(DType::f32, 1024)).wait();
  double wall = seconds_since(start), cpu = cpu_seconds() - cpu_before;
  std::printf("rank %d waited %.2f s using %.3f s of cpu\n", r, wall, cpu);
  if (r == 0) return 0;
  bool ok = wall > 1.0 && cpu < 0.25 * wall;
  if (!ok) std::printf("UNEXPECTED rank %d spun while waiting\n", r);
  return ok ? 0 : 8;
}

int run_error(const Args& a) {
  try {
    auto comm = comm::init_from_env(a.backend);
  } catch (const Error& e) {
    std::printf("EXPECTED ERROR %s\n", e.what());
    return 0;
  }
  std::printf("UNEXPECTED init_from_env(%s) succeeded\n", a.backend.c_str());
  return 1;
}

}  // namespace
}  // namespace weft::testing

int main(int argc, char** argv) {
  using namespace weft::testing;
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--backend") a.backend = argv[i + 1];
    else if (flag == "--scenario") a.scenario = argv[i + 1];
    // --marker: ignored; it lets the driver find this job's processes
  }
  try {
    if (a.scenario == "matrix") return run_matrix(a, false);
    if (a.scenario == "quick") return run_matrix(a, true);
    if (a.scenario == "kill") return run_kill(a);
    if (a.scenario == "batch-p2p") {
      auto world = weft::comm::init_from_env(a.backend);
      auto failures = check_batch_p2p(*world, (size_t{16} << 20) / sizeof(float));
      world->barrier().wait();
      if (failures.empty()) std::printf("batch-p2p passed\n");
      return report(failures);
    }
    if (a.scenario == "mismatch") return run_mismatch(a);
    if (a.scenario == "mismatch-table-8B" || a.scenario == "mismatch-table-16MiB") {
      size_t elements = a.scenario == "mismatch-table-8B" ? 2 : size_t{4} << 20;
      int failures = run_mismatch_cases(*weft::comm::init_from_env(a.backend), elements);
      if (failures == 0) std::printf("mismatch table passed\n");
      return failures == 0 ? 0 : 3;
    }
    if (a.scenario == "mismatch-table-edges") {
      auto world = weft::comm::init_from_env(a.backend);
      int failures = 0;
      for (size_t kib : {16, 32, 64}) failures += run_mismatch_cases(*world, kib * 1024 / 4);
      if (failures == 0) std::printf("mismatch table passed\n");
      return failures == 0 ? 0 : 3;
    }
    if (a.scenario == "mismatch-after") return run_mismatch_after(a);
    if (a.scenario == "late-sender" || a.scenario == "notice-behind-full-mailbox") {
      auto world = weft::comm::init_from_env(a.backend);
      int failures = a.scenario == "late-sender" ? run_late_sender(*world)
                                                 : run_notice_behind_full_mailbox(*world);
      if (failures == 0) std::printf("%s passed\n", a.scenario.c_str());
      return failures == 0 ? 0 : 3;
    }
    if (a.scenario == "crossed-receives") {
      int failures = run_crossed_receives(*weft::comm::init_from_env(a.backend));
      if (failures == 0) std::printf("crossed receives passed\n");
      return failures == 0 ? 0 : 3;
    }
    if (a.scenario == "abort") return run_abort(a);
    if (a.scenario == "late-peer") return run_late_peer();
    if (a.scenario == "idle") return run_idle(a);
    if (a.scenario == "error") return run_error(a);
    std::fprintf(stderr, "unknown scenario '%s'\n", a.scenario.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "UNEXPECTED %s\n", e.what());
    return 1;
  }
}
