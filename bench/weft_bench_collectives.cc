// weft-bench-collectives: time, algbw and busbw of weft's collectives, one rank per process.
//
//   weftrun -n 4 -- weft-bench-collectives --sizes 8,1K,64K,1M,16M --backend shm
//   mpirun -np 2 weft-bench-collectives --ops allreduce,allgather --json
//   mpirun -np 4 weft-bench-collectives --backend mpi-ring --sizes 1M   (weft's ring over MPI)
//   mpirun -np 4 weft-bench-collectives --backend mpi --sizes 1M        (MPI's own collectives)
//
// For each op and size: fill the check pattern, run the op once and verify the result against the
// closed form (a wrong answer ends the run with exit 1), warm up, then time `iters` back-to-back
// ops, each waited for. The reported time is the slowest rank's mean. Buffers are allocated once,
// for the largest size, and reused: a fresh page costs more to touch than to copy. They come
// from Communicator::alloc (registered memory over shm, where the collectives run in place),
// or with --plain from the heap, as a user's own memory would (nccl-tests chooses the other
// way round: plain by default, -R to register). Each line says which path the op took: direct
// (in place), cma (plain memory, large messages read straight from the sender's buffer),
// transport (FIFOs); across nodes, hierarchical (inside each node, then across the nodes'
// leaders: comm/hierarchy.h) or hier-direct (the same, in place inside each node).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_report.h"
#include "bench/collective_case.h"
#include "bench/copy_bandwidth.h"
#include "bench/iteration_plan.h"
#include "comm/backend_registry.h"
#include "comm/communicator.h"
#include "runtime/buffer.h"
#include "runtime/clock.h"
#include "runtime/error.h"

namespace weft::bench {
namespace {

constexpr const char* kProgram = "weft-bench-collectives";
// Every backend init_from_env() accepts, from its registry.
std::vector<std::string> backend_choices() {
  std::vector<std::string> names;
  for (const comm::BackendInfo& b : comm::backends()) names.push_back(b.name);
  return names;
}

struct Options {
  std::string backend;  // empty: WEFT_BACKEND
  std::vector<size_t> sizes;
  std::vector<std::string> ops;
  DType dtype = DType::f32;
  size_t iters = 0;  // 0: adapt to ~0.3 s per size
  size_t copy_bytes = 0;
  bool json = false;
  bool plain = false;
};

// Returns false when --help was asked for (usage already printed).
bool parse_options(int argc, char** argv, Options* o) {
  std::string sizes = "8,1K,64K,1M,16M,64M,256M";
  std::string iters;
  std::string backend;
  std::string ops = "allreduce";
  std::string dtype = "f32";
  std::string copy_bytes = "64M";
  bool json = false;
  bool plain = false;
  bool help = false;

  FlagParser flags(
      std::string("usage: ") + kProgram +
      " [flags]\nTimes weft collectives on every rank of the job (launch it with weftrun or "
      "mpirun).");
  flags.add_value("sizes", "LIST", "message sizes, comma separated, K/M/G suffixes", &sizes);
  flags.add_value("iters", "N", "timed iterations per size (default: as many as fit ~0.3 s, >= 3)",
                  &iters);
  flags.add_value("backend", "NAME",
                  comm::backend_names() + " (default: $WEFT_BACKEND, else auto):\n" +
                      comm::backend_help("      "),
                  &backend);
  flags.add_value("ops", "LIST", "collectives: allreduce, allgather, reduce_scatter, broadcast",
                  &ops);
  flags.add_value("dtype", "NAME", "element type: f32, f16, bf16, f64, i32, i64, u8", &dtype);
  flags.add_value("copy-bytes", "SIZE", "size of the memcpy bandwidth probe, 0 to skip",
                  &copy_bytes);
  flags.add_switch("json", "one JSON object per line instead of a table", &json);
  flags.add_switch("plain",
                   "allocate the buffers from the heap (plain memory: shm copies through its "
                   "FIFOs); default Communicator::alloc (registered memory: shm runs the "
                   "collectives in place, reading the peers' buffers)",
                   &plain);
  flags.parse(argc, argv, &help);
  if (help) {
    std::printf("%s", flags.usage().c_str());
    return false;
  }

  o->sizes = parse_size_list(sizes, "sizes");
  o->iters = parse_count(iters, "iters", 0);
  if (!backend.empty()) o->backend = parse_choice(backend, "backend", backend_choices());
  o->ops = parse_choice_list(ops, "ops", kCollectiveOps);
  std::vector<std::string> dtype_names;
  for (DType d : kAllDTypes) dtype_names.push_back(dtype_name(d));
  o->dtype = parse_dtype(parse_choice(dtype, "dtype", dtype_names));
  o->copy_bytes = copy_bytes == "0" ? 0 : parse_size_list(copy_bytes, "copy-bytes").at(0);
  o->json = json;
  o->plain = plain;
  return true;
}

class Bench {
 public:
  Bench(comm::Communicator& comm, const Options& options)
      : comm_(comm), options_(options), scalar_(sizeof(double)) {}

  void run() {
    if (options_.copy_bytes > 0) report_copy_bandwidth();
    size_t buffer_bytes = 0;
    for (size_t s : options_.sizes)
      buffer_bytes = std::max(buffer_bytes, buffer_bytes_for(s, options_.dtype, comm_.size()));
    comm::RegisteredBuffer a = allocate(buffer_bytes);
    comm::RegisteredBuffer b = allocate(buffer_bytes);
    if (leader() && !options_.json) print_table_header(stdout);
    for (const std::string& op : options_.ops)
      for (size_t bytes : options_.sizes) report(measure(op, bytes, a, b));
  }

 private:
  bool leader() const { return comm_.rank() == 0; }

  comm::RegisteredBuffer allocate(size_t bytes) {
    return options_.plain ? comm::RegisteredBuffer(Buffer(bytes)) : comm_.alloc(bytes);
  }

  void barrier() { comm_.barrier().wait(); }

  double max_over_ranks(double value) {
    *scalar_.as<double>() = value;
    comm_.allreduce(scalar_.view(DType::f64, 1), ReduceOp::max).wait();
    return *scalar_.as<double>();
  }

  // Every rank copies at once, after a barrier; best of a few rounds of the slowest rank.
  void report_copy_bandwidth() {
    CopyProbe probe(options_.copy_bytes);
    double best = 0;
    for (int round = 0; round < kCopyRounds; ++round) {
      barrier();
      double slowest = max_over_ranks(probe.seconds_for(kCopyReps));
      best = round == 0 ? slowest : std::min(best, slowest);
    }
    CopyBandwidth c{comm_.backend(), comm_.size(), probe.bytes(),
                    copy_gbs(probe.bytes(), kCopyReps, best)};
    if (!leader()) return;
    if (options_.json)
      std::printf("%s\n", json_line(c).c_str());
    else
      print_table_line(stdout, c);
    std::fflush(stdout);
  }

  Measurement measure(const std::string& op, size_t bytes, const comm::RegisteredBuffer& a,
                      const comm::RegisteredBuffer& b) {
    CollectiveCase c = make_collective_case(op, bytes, options_.dtype, comm_, a, b);
    auto run_ops = [&c](size_t k) {
      for (size_t i = 0; i < k; ++i) c.launch().wait();
    };

    // The first iteration doubles as the correctness check.
    c.fill();
    const uint64_t direct_before = comm_.direct_ops();
    const uint64_t single_copy_before = comm_.single_copy_messages();
    const uint64_t hierarchical_before = comm_.hierarchical_ops();
    c.launch().wait();
    // The path depends on the size and the buffers alone, so the first op tells.
    const bool direct = comm_.direct_ops() > direct_before;
    const bool single_copy = comm_.single_copy_messages() > single_copy_before;
    const bool hierarchical = comm_.hierarchical_ops() > hierarchical_before;
    if (std::string wrong = c.verify(); !wrong.empty())
      throw Error(ErrorCode::Corrupt,
                  "rank " + std::to_string(comm_.rank()) + ": " + op + " of " +
                      format_bytes(c.bytes) + " over " + comm_.backend() + " on " +
                      std::to_string(comm_.size()) + " ranks returned wrong data: " + wrong +
                      "; the collective is broken, do not trust any figure from this build");

    Timing t = time_ops(
        options_.iters, run_ops, [this](double x) { return max_over_ranks(x); },
        [this] { barrier(); });
    Measurement m;
    m.op = op;
    m.backend = comm_.backend();
    m.ranks = comm_.size();
    m.bytes = c.bytes;
    m.seconds_per_op = t.seconds_per_op;
    m.iters = t.iters;
    m.path = hierarchical ? (direct ? "hier-direct" : "hierarchical")
             : direct     ? "direct"
             : single_copy ? "cma"
                           : "transport";
    return m;
  }

  void report(const Measurement& m) {
    if (leader()) print_measurement(m, options_.json);
  }

  comm::Communicator& comm_;
  const Options& options_;
  Buffer scalar_;
};

// Best effort "rank N" for messages when the communicator could not be built.
std::string rank_label(const comm::Communicator* comm) {
  if (comm) return "rank " + std::to_string(comm->rank());
  for (const char* var : {"WEFT_RANK", "RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"})
    if (const char* v = std::getenv(var); v && *v) return "rank " + std::string(v);
  return "rank ?";
}

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) {
  using namespace weft::bench;
  Options options;
  if (auto status = parse_command_line(kProgram, argc, argv, &options, parse_options))
    return *status;

  std::unique_ptr<weft::comm::Communicator> comm;
  try {
    comm = weft::comm::init_from_env(options.backend);
  } catch (const weft::Error& e) {
    // The launch itself is wrong (variables, backend, a missing WEFT_TOKEN): bad usage, exit 2,
    // like every weft program; anything else that stops the job from meeting is a failure.
    std::fprintf(stderr, "%s: %s: %s\n", kProgram, rank_label(nullptr).c_str(), e.what());
    return e.code() == weft::ErrorCode::InvalidArgument ? 2 : 1;
  }
  try {
    Bench(*comm, options).run();
    return 0;
  } catch (const std::exception& e) {  // weft::Error's what() starts with its code: "PeerLost: ..."
    std::fprintf(stderr, "%s: %s: %s\n", kProgram, rank_label(comm.get()).c_str(), e.what());
  }
  // Stop our in-flight work and tell the peers, so they fail fast instead of waiting out their
  // deadline on a rank that is gone.
  if (comm) comm->abort("weft-bench-collectives failed on " + rank_label(comm.get()));
  return 1;
}
