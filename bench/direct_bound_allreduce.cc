// direct-bound-allreduce: the fastest a direct (in-place) allreduce can be on this machine, as a
// yardstick for weft's own (bench/compare-collectives puts its busbw beside weft's).
//
//   direct-bound-allreduce --ranks 4 --sizes 1M,64M,256M --json
//
// No weft code in what is timed: one process per rank, forked here; every rank's buffer is
// shared memory mapped by all of them (one MAP_SHARED mapping each, made before the fork); an
// allreduce is
//   1. a barrier (every rank's input is in place),
//   2. each rank sums its 1/n slice of the n buffers, chunk by chunk, in a small array that stays
//      in cache, and copies each chunk's sum into all n buffers,
//   3. a barrier (every rank's buffer holds the result),
// which is the least memory traffic and synchronisation an allreduce into every rank's buffer
// needs. The barrier is a counter and a futex: it spins briefly when every rank has a core, and
// sleeps at once when ranks outnumber cores (a spinning rank would take the core of the one it
// waits for). Only the harness is shared with the other programs (flags, the iteration policy and
// the report), so the JSON lines read the same.
//
// Per size: warm up, time back-to-back allreduces (iteration count as in every contender,
// ~0.3 s), report the slowest rank's mean; then fill a known pattern, run one more allreduce and
// check every element of every buffer against its closed form (exit 1 if one is wrong).
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_report.h"
#include "bench/check_pattern.h"
#include "bench/iteration_plan.h"

namespace weft::bench {
namespace {

constexpr const char* kProgram = "direct-bound-allreduce";
constexpr int kMaxRanks = 256;
// 16 KiB of f32: the running sum of a chunk stays in L1 between its n reads and n writes.
constexpr size_t kChunkFloats = 4096;
// Slices start on a cache line (16 f32), so no two ranks write the same line.
constexpr size_t kSliceAlignFloats = 16;
// Barrier polls before sleeping, when every rank has a core: a peer arrives within microseconds.
constexpr unsigned kSpins = 4096;

struct Options {
  int ranks = 2;
  std::vector<size_t> sizes;
  size_t iters = 0;  // 0: adapt to ~0.3 s per size
  std::string label = "direct-bound";
  bool json = false;
};

// Returns false when --help was asked for (usage already printed).
bool parse_options(int argc, char** argv, Options* o) {
  std::string ranks = "2";
  std::string sizes = "8,1K,64K,1M,16M,64M,256M";
  std::string iters;
  bool help = false;
  FlagParser flags(std::string("usage: ") + kProgram +
                   " [flags]\nTimes a minimal direct allreduce (f32, sum) of processes forked "
                   "here, each reading and writing every rank's shared buffer: no weft code.");
  flags.add_value("ranks", "N", "processes, one per rank (1 to 256)", &ranks);
  flags.add_value("sizes", "LIST", "message sizes, comma separated, K/M/G suffixes", &sizes);
  flags.add_value("iters", "N", "timed iterations per size (default: as many as fit ~0.3 s, >= 3)",
                  &iters);
  flags.add_value("label", "NAME", "backend name in the report", &o->label);
  flags.add_switch("json", "one JSON object per line instead of a table", &o->json);
  flags.parse(argc, argv, &help);
  if (help) {
    std::printf("%s", flags.usage().c_str());
    return false;
  }
  size_t n = parse_count(ranks, "ranks", 2);
  if (n > kMaxRanks)
    throw UsageError("--ranks " + ranks + " is too many; use at most " + std::to_string(kMaxRanks));
  o->ranks = static_cast<int>(n);
  o->sizes = parse_size_list(sizes, "sizes");
  o->iters = parse_count(iters, "iters", 0);
  if (o->label.empty()) throw UsageError("--label must not be empty");
  return true;
}

// Process-shared (no FUTEX_PRIVATE_FLAG): the word lives in a MAP_SHARED mapping.
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

// What the ranks share besides the buffers: a barrier (arrival count and generation) and a slot
// per rank for agreeing on the slowest time.
struct Shared {
  alignas(64) std::atomic<uint32_t> arrived{0};
  alignas(64) std::atomic<uint32_t> generation{0};
  std::atomic<uint32_t> sleepers{0};
  alignas(64) double seconds[kMaxRanks] = {};
};

class Barrier {
 public:
  Barrier(Shared* shared, int ranks, bool oversubscribed)
      : s_(shared), ranks_(static_cast<uint32_t>(ranks)), spins_(oversubscribed ? 0 : kSpins) {}

  void wait() {
    // Read before arriving: the generation cannot move until this rank has arrived.
    const uint32_t gen = s_->generation.load(std::memory_order_acquire);
    if (s_->arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == ranks_) {
      s_->arrived.store(0, std::memory_order_relaxed);
      s_->generation.store(gen + 1, std::memory_order_seq_cst);
      // A sleeper counted after this load sees the new generation in its futex_wait.
      if (s_->sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(&s_->generation);
      return;
    }
    for (unsigned i = 0; i < spins_; ++i) {
      if (s_->generation.load(std::memory_order_acquire) != gen) return;
      __builtin_ia32_pause();
    }
    while (s_->generation.load(std::memory_order_acquire) == gen) {
      s_->sleepers.fetch_add(1, std::memory_order_seq_cst);
      futex_wait(&s_->generation, gen);  // returns at once if the generation moved meanwhile
      s_->sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
  }

 private:
  Shared* s_;
  uint32_t ranks_;
  unsigned spins_;
};

// The plain loops GCC vectorises, compiled for each ISA (the same choice weft's reduce makes, so
// neither side gains from wider vectors). TSan's runtime is not ready when ifunc resolvers run.
#if defined(__SANITIZE_THREAD__)
#define BOUND_CLONE_PER_ISA
#else
#define BOUND_CLONE_PER_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

// Elements [lo, hi) of the allreduce: their sum over all n buffers, written into all n.
BOUND_CLONE_PER_ISA void reduce_slice(float* const* bufs, int n, size_t lo, size_t hi) {
  alignas(64) float sum[kChunkFloats];
  for (size_t c = lo; c < hi; c += kChunkFloats) {
    const size_t m = std::min(kChunkFloats, hi - c);
    const float* b0 = bufs[0] + c;
    for (size_t i = 0; i < m; ++i) sum[i] = b0[i];
    for (int r = 1; r < n; ++r) {
      const float* b = bufs[r] + c;
      for (size_t i = 0; i < m; ++i) sum[i] += b[i];
    }
    for (int r = 0; r < n; ++r) std::memcpy(bufs[r] + c, sum, m * sizeof(float));
  }
}

struct Rank {
  int rank;
  int ranks;
  float* const* bufs;  // every rank's buffer, mapped at the same address in every process
  Shared* shared;
  Barrier barrier;

  // This rank's slice of `count` elements.
  std::pair<size_t, size_t> slice(size_t count) const {
    size_t per = (count + ranks - 1) / ranks;
    per = (per + kSliceAlignFloats - 1) / kSliceAlignFloats * kSliceAlignFloats;
    size_t lo = std::min(count, per * static_cast<size_t>(rank));
    return {lo, std::min(count, lo + per)};
  }

  void allreduce(size_t count) {
    barrier.wait();
    if (ranks > 1) {
      auto [lo, hi] = slice(count);
      reduce_slice(bufs, ranks, lo, hi);
    }
    barrier.wait();
  }

  double max_over_ranks(double x) {
    shared->seconds[rank] = x;
    barrier.wait();
    double m = *std::max_element(shared->seconds, shared->seconds + ranks);
    barrier.wait();  // nobody overwrites a slot before everyone has read them all
    return m;
  }

  void fill(size_t count) {
    float* mine = bufs[rank];
    for (size_t i = 0; i < count; ++i) mine[i] = static_cast<float>(pattern_value(rank, i));
  }

  // "" when this rank's buffer holds the pattern's sum, else the first wrong element.
  std::string check(size_t count) const {
    const float* mine = bufs[rank];
    for (size_t i = 0; i < count; ++i) {
      const double want = pattern_sum(ranks, i);
      if (mine[i] != want)
        return "element " + std::to_string(i) + " of " + std::to_string(count) + " is " +
               std::to_string(mine[i]) + ", expected " + std::to_string(want);
    }
    return "";
  }
};

// One rank's whole run; returns its exit status.
int run_rank(const Options& options, Rank& r) {
  size_t max_count = 1;
  for (size_t s : options.sizes) max_count = std::max(max_count, s / sizeof(float));
  r.fill(max_count);  // the owner touches its pages first, outside any timed op
  if (r.rank == 0 && !options.json) print_table_header(stdout);
  for (size_t requested : options.sizes) {
    const size_t count = std::max<size_t>(1, requested / sizeof(float));
    // The timed ops reduce their own results again (the values grow to inf: no slower to add).
    Timing t = time_ops(
        options.iters,
        [&](size_t k) {
          for (size_t i = 0; i < k; ++i) r.allreduce(count);
        },
        [&](double x) { return r.max_over_ranks(x); }, [&] { r.barrier.wait(); });
    // Peers write this buffer only after the allreduce's first barrier, which the fill precedes.
    r.fill(count);
    r.allreduce(count);
    if (std::string wrong = r.check(count); !wrong.empty()) {
      std::fprintf(stderr, "%s: rank %d: allreduce of %s gave wrong data: %s\n", kProgram, r.rank,
                   format_bytes(count * sizeof(float)).c_str(), wrong.c_str());
      return 1;
    }
    Measurement m;
    m.op = "allreduce";
    m.backend = options.label;
    m.ranks = r.ranks;
    m.bytes = count * sizeof(float);
    m.seconds_per_op = t.seconds_per_op;
    m.iters = t.iters;
    m.path = "direct";
    if (r.rank == 0) print_measurement(m, options.json);
  }
  return 0;
}

void* map_shared(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "%s: mmap of %s of shared memory failed: %s; try smaller --sizes\n",
                 kProgram, format_bytes(bytes).c_str(), std::strerror(errno));
    return nullptr;
  }
  return p;
}

bool oversubscribed(int ranks) {
  cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof cpus, &cpus) != 0) return true;
  return ranks > CPU_COUNT(&cpus);
}

// Forks the ranks and waits for them; when one fails, the others (stuck in a barrier) are killed.
int run(const Options& options) {
  size_t max_bytes = sizeof(float);
  for (size_t s : options.sizes) max_bytes = std::max(max_bytes, s / sizeof(float) * sizeof(float));
  auto* shared = static_cast<Shared*>(map_shared(sizeof(Shared)));
  if (shared == nullptr) return 1;
  new (shared) Shared();
  std::vector<float*> bufs;
  for (int r = 0; r < options.ranks; ++r) {
    void* p = map_shared(max_bytes);
    if (p == nullptr) return 1;
    bufs.push_back(static_cast<float*>(p));
  }
  const bool crowded = oversubscribed(options.ranks);

  std::fflush(stdout);  // nothing buffered may be printed twice by the children
  const pid_t parent = getpid();
  std::vector<pid_t> children;
  for (int rank = 0; rank < options.ranks; ++rank) {
    pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "%s: fork failed: %s\n", kProgram, std::strerror(errno));
      for (pid_t c : children) kill(c, SIGKILL);
      for (pid_t c : children) waitpid(c, nullptr, 0);
      return 1;
    }
    if (pid == 0) {
      // Die with the parent (e.g. killed by a timeout) rather than wait in a barrier forever.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      Rank r{rank, options.ranks, bufs.data(), shared, Barrier(shared, options.ranks, crowded)};
      int rc = run_rank(options, r);
      std::fflush(stdout);
      _exit(rc);
    }
    children.push_back(pid);
  }

  int rc = 0;
  while (!children.empty()) {
    int status = 0;
    pid_t pid = wait(&status);
    if (pid < 0) break;
    if (auto it = std::find(children.begin(), children.end(), pid); it != children.end())
      children.erase(it);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    if (rc != 0) continue;  // one of those killed below
    if (WIFSIGNALED(status))
      std::fprintf(stderr, "%s: a rank (process %d) died of signal %d\n", kProgram, pid,
                   WTERMSIG(status));
    for (pid_t c : children) kill(c, SIGKILL);  // not reaped yet: still ours
    rc = 1;
  }
  return rc;
}

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) {
  using namespace weft::bench;
  Options options;
  if (auto status = parse_command_line(kProgram, argc, argv, &options, parse_options))
    return *status;
  return run(options);
}
