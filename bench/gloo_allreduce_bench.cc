// gloo-bench-allreduce: Gloo's AllreduceRingChunked (f32 sum, in place) over Gloo's TCP transport
// on loopback, timed the way weft-bench-collectives times weft's allreduce.
//
//   weftrun -n 2 -- gloo-bench-allreduce --store-dir /tmp/gloo-rdv --sizes 1M,64M --json
//   mpirun -np 2 gloo-bench-allreduce --sizes 1M,64M
//
// Ranks learn who they are from the launcher (weft::World: weftrun, mpirun, srun, ...) and meet
// through Gloo's FileStore in --store-dir, which must be empty or absent at start (a key left by
// an earlier run would be read as this run's). Without --store-dir the directory is
// /tmp/weft-gloo-bench-<job id>, removed by rank 0 at the end.
//
// Same protocol as weft's: verify the first iteration against the closed form, warm up, time
// back-to-back runs, report the slowest rank's mean. Each size's algorithm object is built once
// (it allocates its inboxes) and run repeatedly, as a training loop would.
#include <gloo/allreduce_ring.h>
#include <gloo/allreduce_ring_chunked.h>
#include <gloo/barrier_all_to_one.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_report.h"
#include "bench/check_pattern.h"
#include "bench/iteration_plan.h"
#include "runtime/buffer.h"
#include "runtime/clock.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/world.h"

namespace weft::bench {
namespace {

constexpr const char* kProgram = "gloo-bench-allreduce";

struct Options {
  std::vector<size_t> sizes;
  size_t iters = 0;
  std::string store_dir;  // empty: derived from the job id, and removed at the end
  std::string label = "gloo";
  bool json = false;
};

bool parse_options(int argc, char** argv, Options* o) {
  std::string sizes = "8,1K,64K,1M,16M,64M,256M";
  std::string iters;
  bool help = false;
  FlagParser flags(std::string("usage: ") + kProgram +
                   " [flags]\nTimes gloo::AllreduceRingChunked (f32, sum) over Gloo's TCP "
                   "transport on loopback; launch with weftrun or mpirun.");
  flags.add_value("sizes", "LIST", "message sizes, comma separated, K/M/G suffixes", &sizes);
  flags.add_value("iters", "N", "timed iterations per size (default: as many as fit ~0.3 s, >= 3)",
                  &iters);
  flags.add_value("store-dir", "DIR",
                  "empty directory for Gloo's FileStore rendezvous, shared by all ranks "
                  "(default: /tmp/weft-gloo-bench-<job id>)",
                  &o->store_dir);
  flags.add_value("label", "NAME", "backend name in the report", &o->label);
  flags.add_switch("json", "one JSON object per line instead of a table", &o->json);
  flags.parse(argc, argv, &help);
  if (help) {
    std::printf("%s", flags.usage().c_str());
    return false;
  }
  o->sizes = parse_size_list(sizes, "sizes");
  o->iters = parse_count(iters, "iters", 0);
  if (o->label.empty()) throw UsageError("--label must not be empty");
  return true;
}

// A directory every rank of this job names alike: weftrun's job id, or Open MPI's.
std::string default_store_dir(const World& world) {
  std::string job = world.job_id;
  if (world.launcher == "openmpi") {
    const char* ompi_job = std::getenv("OMPI_MCA_ess_base_jobid");
    job = ompi_job ? ompi_job : "";
  }
  if (job.empty() || job == "local")
    throw UsageError("cannot derive a rendezvous directory shared by all ranks (no job id from " +
                     world.launcher + "); pass --store-dir DIR");
  return "/tmp/weft-gloo-bench-" + job;
}

class GlooBench {
 public:
  GlooBench(std::shared_ptr<gloo::Context> context, const Options& options)
      : context_(std::move(context)),
        options_(options),
        barrier_(context_),
        max_op_(context_, {&scalar_}, 1, gloo::ReductionFunction<double>::max) {}

  void run() {
    const int rank = context_->rank;
    const int ranks = context_->size;
    size_t max_bytes = 0;
    for (size_t s : options_.sizes) max_bytes = std::max(max_bytes, s);
    size_t max_count = std::max<size_t>(1, max_bytes / sizeof(float));
    if (max_count > static_cast<size_t>(INT32_MAX))
      throw Error(ErrorCode::InvalidArgument,
                  format_bytes(max_bytes) + " exceeds Gloo's int element count");
    Buffer buffer(max_count * sizeof(float));

    if (rank == 0 && !options_.json) print_table_header(stdout);
    for (size_t requested : options_.sizes) {
      size_t count = std::max<size_t>(1, requested / sizeof(float));
      Tensor data = buffer.view(DType::f32, count);
      gloo::AllreduceRingChunked<float> allreduce(context_, {data.data_as<float>()},
                                                  static_cast<int>(count));
      auto run_ops = [&allreduce](size_t k) {
        for (size_t i = 0; i < k; ++i) allreduce.run();
      };

      fill_pattern(data, rank, 0);
      run_ops(1);
      if (std::string wrong =
              check_elements(data, ranks, [ranks](size_t i) { return pattern_sum(ranks, i); });
          !wrong.empty())
        throw Error(ErrorCode::Corrupt, "AllreduceRingChunked of " + format_bytes(data.nbytes()) +
                                            " returned wrong data: " + wrong);

      Timing t = time_ops(
          options_.iters, run_ops, [this](double x) { return max_over_ranks(x); },
          [this] { barrier_.run(); });
      Measurement m;
      m.op = "allreduce";
      m.backend = options_.label;
      m.ranks = ranks;
      m.bytes = data.nbytes();
      m.seconds_per_op = t.seconds_per_op;
      m.iters = t.iters;
      if (rank == 0) print_measurement(m, options_.json);
    }
    barrier_.run();  // nobody leaves (and closes its sockets) while a peer still reads
  }

 private:
  double max_over_ranks(double x) {
    scalar_ = x;
    max_op_.run();
    return scalar_;
  }

  std::shared_ptr<gloo::Context> context_;
  const Options& options_;
  double scalar_ = 0;
  gloo::BarrierAllToOne barrier_;
  gloo::AllreduceRing<double> max_op_;
};

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) {
  using namespace weft::bench;
  Options options;
  std::string rank_text = "rank ?";
  try {
    if (!parse_options(argc, argv, &options)) return 0;
    weft::World world = weft::World::from_env();
    rank_text = "rank " + std::to_string(world.rank);
    bool own_dir = options.store_dir.empty();
    if (own_dir) options.store_dir = default_store_dir(world);
    std::filesystem::create_directories(options.store_dir);

    gloo::transport::tcp::attr attr;
    attr.hostname = "127.0.0.1";
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(world.rank, world.size);
    context->setTimeout(weft::env::timeout());
    {
      gloo::rendezvous::FileStore store(options.store_dir);
      context->connectFullMesh(store, device);
    }
    GlooBench(context, options).run();
    if (own_dir && world.rank == 0) std::filesystem::remove_all(options.store_dir);
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n(run %s --help for every flag)\n", kProgram, e.what(), kProgram);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s: %s\n", kProgram, rank_text.c_str(), e.what());
    return 1;
  }
}
