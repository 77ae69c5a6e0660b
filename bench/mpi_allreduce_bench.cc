// mpi-bench-allreduce: MPI_Allreduce (f32 sum, in place) timed the way weft-bench-collectives
// times weft's allreduce, so bench/compare-collectives can put both in one table.
//
//   mpirun -np 2 mpi-bench-allreduce --sizes 1M,16M,64M --json --label mpi-tuned
//
// Same protocol as weft's: verify the first iteration against the closed form, warm up, time
// back-to-back calls, report the slowest rank's mean. The buffer is allocated once and reused.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_report.h"
#include "bench/check_pattern.h"
#include "bench/copy_bandwidth.h"
#include "bench/iteration_plan.h"
#include "runtime/buffer.h"
#include "runtime/clock.h"

namespace weft::bench {
namespace {

constexpr const char* kProgram = "mpi-bench-allreduce";

struct Options {
  std::vector<size_t> sizes;
  size_t iters = 0;
  std::string label = "mpi";
  size_t copy_bytes = 0;
  bool json = false;
};

// Returns false when --help was asked for (usage already printed).
bool parse_options(int argc, char** argv, Options* o) {
  std::string sizes = "8,1K,64K,1M,16M,64M,256M";
  std::string iters;
  std::string copy_bytes = "64M";
  bool help = false;
  FlagParser flags(std::string("usage: ") + kProgram +
                   " [flags]\nTimes MPI_Allreduce (f32, sum, in place) on every rank of an "
                   "mpirun job.");
  flags.add_value("sizes", "LIST", "message sizes, comma separated, K/M/G suffixes", &sizes);
  flags.add_value("iters", "N", "timed iterations per size (default: as many as fit ~0.3 s, >= 3)",
                  &iters);
  flags.add_value("label", "NAME", "backend name in the report, e.g. mpi-tuned", &o->label);
  flags.add_value("copy-bytes", "SIZE", "size of the memcpy bandwidth probe, 0 to skip",
                  &copy_bytes);
  flags.add_switch("json", "one JSON object per line instead of a table", &o->json);
  flags.parse(argc, argv, &help);
  if (help) {
    std::printf("%s", flags.usage().c_str());
    return false;
  }
  o->sizes = parse_size_list(sizes, "sizes");
  o->iters = parse_count(iters, "iters", 0);
  o->copy_bytes = copy_bytes == "0" ? 0 : parse_size_list(copy_bytes, "copy-bytes").at(0);
  if (o->label.empty()) throw UsageError("--label must not be empty");
  return true;
}

// Aborts the whole job: one rank's failure must not leave the others waiting in a collective.
[[noreturn]] void fail(int rank, const std::string& what) {
  std::fprintf(stderr, "%s: rank %d: %s\n", kProgram, rank, what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this tells the compiler so
}

void check(int rc, int rank, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail(rank, std::string(call) + " failed: " + std::string(text, static_cast<size_t>(len)));
}

double max_over_ranks(double x, int rank) {
  check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), rank,
        "MPI_Allreduce(max)");
  return x;
}

// Every rank copies at once, after a barrier; best of a few rounds of the slowest rank
// (the same probe weft-bench-collectives runs).
void report_copy_bandwidth(const Options& options, int rank, int ranks) {
  CopyProbe probe(options.copy_bytes);
  double best = 0;
  for (int round = 0; round < kCopyRounds; ++round) {
    check(MPI_Barrier(MPI_COMM_WORLD), rank, "MPI_Barrier");
    double slowest = max_over_ranks(probe.seconds_for(kCopyReps), rank);
    best = round == 0 ? slowest : std::min(best, slowest);
  }
  if (rank != 0) return;
  CopyBandwidth c{options.label, ranks, probe.bytes(), copy_gbs(probe.bytes(), kCopyReps, best)};
  if (options.json)
    std::printf("%s\n", json_line(c).c_str());
  else
    print_table_line(stdout, c);
  std::fflush(stdout);
}

int run(const Options& options, int rank, int ranks) {
  if (options.copy_bytes > 0) report_copy_bandwidth(options, rank, ranks);
  size_t max_bytes = 0;
  for (size_t s : options.sizes) max_bytes = std::max(max_bytes, s);
  size_t max_count = std::max<size_t>(1, max_bytes / sizeof(float));
  if (max_count > static_cast<size_t>(INT32_MAX))
    fail(rank, "a size of " + format_bytes(max_bytes) + " exceeds MPI's int element count");
  Buffer buffer(max_count * sizeof(float));

  if (rank == 0 && !options.json) print_table_header(stdout);
  for (size_t requested : options.sizes) {
    size_t count = std::max<size_t>(1, requested / sizeof(float));
    Tensor data = buffer.view(DType::f32, count);
    auto run_ops = [&](size_t k) {
      for (size_t i = 0; i < k; ++i)
        check(MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                            MPI_COMM_WORLD),
              rank, "MPI_Allreduce");
    };

    fill_pattern(data, rank, 0);
    run_ops(1);
    if (std::string wrong =
            check_elements(data, ranks, [ranks](size_t i) { return pattern_sum(ranks, i); });
        !wrong.empty())
      fail(rank,
           "MPI_Allreduce of " + format_bytes(data.nbytes()) + " returned wrong data: " + wrong);

    Timing t = time_ops(
        options.iters, run_ops, [rank](double x) { return max_over_ranks(x, rank); },
        [rank] { check(MPI_Barrier(MPI_COMM_WORLD), rank, "MPI_Barrier"); });
    Measurement m;
    m.op = "allreduce";
    m.backend = options.label;
    m.ranks = ranks;
    m.bytes = data.nbytes();
    m.seconds_per_op = t.seconds_per_op;
    m.iters = t.iters;
    if (rank == 0) print_measurement(m, options.json);
  }
  return 0;
}

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) {
  using namespace weft::bench;
  Options options;
  if (auto status = parse_command_line(kProgram, argc, argv, &options, parse_options))
    return *status;
  MPI_Init(&argc, &argv);
  int rank = 0;
  int ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  // Errors come back as codes (checked above) instead of killing the job without a word.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rc = 0;
  try {
    rc = run(options, rank, ranks);
  } catch (const std::exception& e) {
    fail(rank, e.what());
  }
  MPI_Finalize();
  return rc;
}
