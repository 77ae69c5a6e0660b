// weft-train: the main job. Trains a GPT-2-style byte-level language model on the ranks it was
// launched with (weftrun, torchrun, mpirun, srun, or alone), printing one progress line per
// step and optionally a JSON log. See `weft-train --help` and README.md.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "comm/communicator.h"
#include "train/checkpointing.h"
#include "train/cuda_trainer.h"
#include "train/memory_check.h"
#include "train/rank_agreement.h"
#include "train/parallel_trainer.h"
#include "train/run_views.h"
#include "train/trainer.h"
#include "kernels/matmul.h"
#include "runtime/clock.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/preemption.h"
#include "runtime/thread_clock.h"
#include "runtime/world.h"

namespace {

using namespace weft;
using namespace weft::train;

// OpenBLAS picks its kernels when the library loads and reads OPENBLAS_CORETYPE only then. On
// CPUs this OpenBLAS does not know (AMD Zen 4/5) it falls back to half-speed AVX2 kernels, so
// the process restarts itself once with the better kernel set named. Returns only when no
// restart is needed.
void restart_with_better_blas_kernels(char** argv) {
  const char* upgrade = kernels::cpu::blas_coretype_upgrade();
  if (!upgrade || std::getenv("OPENBLAS_CORETYPE")) return;
  setenv("OPENBLAS_CORETYPE", upgrade, 1);
  execv("/proc/self/exe", argv);
  // exec failed: go on with the slower kernels.
  std::fprintf(stderr, "weft-train: could not restart with OPENBLAS_CORETYPE=%s; continuing\n",
               upgrade);
}

// This rank's share of the cores it may run on (taskset / cgroups respected).
int default_threads(const World& world) {
  return std::max(1, usable_cores() / std::max(1, world.local_size));
}

// Before any work: the memory the flags need must be there (the host's for every rank of this
// node; with --device cuda also the GPU's).
void check_memory(const TrainOptions& options, const World& world, int gpu) {
  if (std::optional<double> available = host_memory_available())
    check_memory_fits(options, host_memory_need(options, world.size, options.lanes()),
                      world.local_size, *available, "memory", "MemAvailable in /proc/meminfo");
  if (gpu >= 0) check_gpu_memory(options, world.size, world.local_size, gpu);
}

int run(TrainOptions options) {
  // A restart by weftrun --elastic continues from the newest checkpoint (every rank of a
  // generation gets the same count, so the ranks agree on --resume).
  if (!options.ckpt_dir.empty() && env::get_int("WEFT_RESTART_COUNT") > 0) options.resume = true;
  // With somewhere to save to, a preemption notice stops the job after a step, saved, instead of
  // killing it. Caught from the start: a rank that died of it in set-up would fail its peers.
  if (!options.ckpt_dir.empty()) catch_preemption_signals();
  World world = World::from_env();
  options.resolve(world.size);  // bad batch shapes fail here, before any rendezvous
  // Before the rendezvous: a rank without a usable GPU stops before its peers wait for it.
  const int gpu = options.device == "cuda" ? training_device(world.local_rank) : -1;
  if (options.threads == 0) options.threads = default_threads(world);
  check_memory(options, world, gpu);
  Corpus corpus = Corpus::load(options.data, options.model.seq);
  const int threads = options.threads;
  if (const char* better = kernels::cpu::blas_coretype_upgrade(); better && world.rank == 0)
    std::fprintf(stderr,
                 "weft-train: note: OPENBLAS_CORETYPE=%s in the environment keeps OpenBLAS on "
                 "slower kernels than this CPU runs; unset it (or set %s) for about twice the "
                 "matmul speed\n",
                 std::getenv("OPENBLAS_CORETYPE"), better);

  const bool leader = world.rank == 0;
  auto comm = comm::init_from_env(options.backend);
  std::unique_ptr<TrainingRun> trainer;
  CutModelRun* cut = nullptr;  // the trainer, unless it is the CPU's data-parallel one
  std::string compute, layout = options.describe_layout();
  if (gpu >= 0 || options.model_parallel()) {
    std::unique_ptr<CutModelRun> run = gpu >= 0 ? make_cuda_trainer(options, corpus, *comm, gpu)
                                                : make_parallel_trainer(options, corpus, *comm);
    if (options.pp > 1)
      layout += ", schedule's idle " +
                std::to_string(static_cast<int>(100 * run->theoretical_idle() + 0.5)) +
                "% at unit costs";
    cut = run.get();
    trainer = std::move(run);
    compute = gpu >= 0 ? "cuda:" + std::to_string(gpu) + " in " + options.precision
                       : describe_threads(threads, 1) + " (" + kernels::cpu::blas_core_name() +
                             ")";
  } else {
    trainer = std::make_unique<Trainer>(options, corpus, *comm);
    compute =
        describe_threads(threads, options.lanes()) + " (" + kernels::cpu::blas_core_name() + ")";
  }
  // One job, one configuration: every rank stops here, before step 1, if they differ.
  auto gather = [&](const std::vector<uint64_t>& mine) { return trainer->allgather_words(mine); };
  check_flags_agree(options.flags_that_must_agree(corpus.checksum()), gather);
  check_replicas_agree(trainer->initial_checksum(), gather);
  // Only the first rank writes the log; if it cannot, every rank stops with its reason.
  std::optional<JsonLog> log;
  std::optional<RunViews> views;  // --trace, --plot
  std::optional<Error> log_error;
  try {
    if (leader && !options.log_json.empty()) log.emplace(options.log_json);
    views.emplace(options, world.rank);
  } catch (const Error& e) {
    log_error = e;
  }
  stop_together(log_error, gather);
  views->start_clock();  // every rank, just after the same collective
  trainer->set_trace(views->trace());
  if (leader) {
    std::printf(
        "weft-train: %.0f parameters (%d layers, d-model %d, %d heads, seq %d) | %d ranks over "
        "%s | %s | batch %d = dp %d x %d micro-batch(es) x %d | %s | data: %s, %zu train / %zu "
        "held-out tokens\n",
        options.model.parameters(), options.model.layers, options.model.d_model,
        options.model.heads, options.model.seq, comm->size(), comm->backend(), layout.c_str(),
        options.batch, options.dp, options.accumulation(), options.micro_batch, compute.c_str(),
        corpus.source().c_str(), corpus.train_tokens(), corpus.eval_tokens());
    std::fflush(stdout);
  }

  // The trace and plot of a run that all ranks leave early together (divergence, preemption)
  // still show the steps it ran; the leader says where they are.
  const RankLink link{
      comm->size(),
      [&](const void* data, size_t bytes, int peer) { trainer->send_bytes(data, bytes, peer); },
      [&](void* data, size_t bytes, int peer) { trainer->recv_bytes(data, bytes, peer); }};
  auto write_views_now = [&] {
    for (const std::string& line : views->finish(link))
      if (leader) std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };

  Checkpointing checkpoints(options, *trainer, *comm, corpus.checksum());
  checkpoints.set_trace(views->trace());
  const int resumed = checkpoints.resume();
  std::vector<StepStats> history;
  std::optional<double> last_eval;
  Clock::time_point start = Clock::now();
  for (int step = resumed + 1; step <= options.steps; step++) {
    StepStats s = trainer->step(step);
    history.push_back(s);
    views->add(s);
    if (leader) {
      std::printf("%s\n", progress_line(s, options.steps).c_str());
      if (log) log->write(json_line(s));
    }
    // Every rank sees the same loss (averaged) and norm (of the averaged gradients), so every
    // rank stops at the same step, the log ending with it.
    if (std::string why = divergence(s); !why.empty()) {
      std::fflush(stdout);
      std::fprintf(stderr, "weft-train: %s\n", why.c_str());
      write_views_now();
      return 1;
    }
    checkpoints.after_step(step);
    if (options.eval_every > 0 && (step % options.eval_every == 0 || step == options.steps)) {
      EvalStats e = [&] {
        const TraceScope span(views->trace(), TraceRow::compute, "evaluate", {{"step", step}});
        return trainer->evaluate(step);
      }();
      views->add(e);
      last_eval = e.loss;
      if (leader) {
        std::printf("%s\n", eval_line(e).c_str());
        if (log) log->write(json_line(e));
      }
    }
    if (leader) std::fflush(stdout);
    // A signal reaches the ranks at different moments: they agree (a one-word allgather) to
    // stop after this step, all of them, or go on. The last step ends the run anyway.
    if (checkpoints.enabled() && step < options.steps) {
      if (const int signo = agree_on_preemption(preemption_signal(), gather); signo != 0) {
        checkpoints.save(step, /*wait_for_commit=*/true);
        if (leader)
          std::printf(
              "weft-train: preempted by SIG%s: stopped after step %d, whose checkpoint "
              "is committed in %s; run again with --resume to continue\n",
              ::sigabbrev_np(signo), step, options.ckpt_dir.c_str());
        write_views_now();
        return kPreemptedExitStatus;
      }
    }
  }
  checkpoints.finish();
  const std::string memory = cut ? cut->activation_memory_line() : "";
  const std::vector<std::string> views_written = views->finish(link);
  if (leader) {
    std::printf("%s\n", summary_line(summarize(history, last_eval, seconds_since(start))).c_str());
    if (cut && options.pp > 1) std::printf("%s\n", memory.c_str());
    // Which path the data-parallel buckets took: the replicated trainer's on the world, a cut
    // model's on this rank's dp group.
    if (options.dp > 1)
      std::printf("gradient buckets: %llu collectives in place on registered memory (their "
                  "reductions, and ZeRO-1's gathers; the rest through the %s transport)\n",
                  static_cast<unsigned long long>(cut ? cut->dp_direct_ops() : comm->direct_ops()),
                  comm->backend());
    if (log) std::printf("JSON log: %s\n", options.log_json.c_str());
    for (const std::string& line : views_written) std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TrainOptions options =
        parse_train_options(std::vector<std::string>(argv + 1, argv + argc));
    if (options.help) {
      std::fputs(train_usage().c_str(), stdout);
      return 0;
    }
    restart_with_better_blas_kernels(argv);
    return run(options);
  } catch (const weft::Error& e) {
    // Exit codes (--help): 2 bad usage, 1 a failure in the job.
    std::fprintf(stderr, "weft-train: %s\n", e.what());
    return e.code() == weft::ErrorCode::InvalidArgument ? 2 : 1;
  }
}
