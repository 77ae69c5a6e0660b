#pragma once
// What weft-train leaves to look at beside its log: `--trace FILE`, every rank's timeline
// gathered by rank 0 into one Chrome trace (a process per rank, in Perfetto), and
// `--plot FILE.svg`, rank 0's picture of the loss, held-out loss and tokens/s against the step.
//
// The ranks' timelines are gathered over the job's communicator, not left as files for a
// launcher to merge: one file comes out whatever started the ranks (weftrun, torchrun, mpirun,
// srun) and whichever machines they ran on. Only rank 0 receives them, one rank at a time, and
// writes each to the file as it arrives: a rank's timeline can be tens of megabytes, so neither
// a rank nor rank 0 ever holds more than its own and a chunk of another's.
//
// Both files are written whole at the end, to a temporary file beside them that is then renamed:
// a run that stops early leaves the files it had before, never an empty or half-written one.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/trace.h"
#include "train/step_log.h"
#include "train/train_options.h"

namespace weft::train {

// Point to point between world ranks over the job's communicator, for the timelines' way to
// rank 0: in weft-train TrainingRun::send_bytes and recv_bytes, which pass the bytes through
// memory the communicator's backend takes (a GPU's, for --backend nccl).
struct RankLink {
  int ranks;
  std::function<void(const void* data, size_t bytes, int peer)> send;
  std::function<void(void* data, size_t bytes, int peer)> recv;
};

class RunViews {
 public:
  // Checks now that the leader can write its files (without touching them), so that a path
  // that cannot be written stops the job before step 1 (InvalidArgument naming the flag and
  // the path); with --trace every rank records.
  RunViews(const TrainOptions& options, int rank);

  // This rank's recorder, or null without --trace.
  TraceRecorder* trace() { return trace_ ? &*trace_ : nullptr; }
  // Time zero of every rank's timeline: each rank calls it just after the same collective.
  void start_clock();
  void add(const StepStats& s);
  void add(const EvalStats& e);
  // With --trace, every rank calls it, its steps' ops done: each sends its timeline to rank 0
  // over `link`. The leader writes its files and gets a line per file saying
  // where it is and how to open it; Io naming the path when a write fails. Also on the way out
  // of a run that all ranks leave early together (divergence, preemption), so the files show
  // the steps it ran.
  std::vector<std::string> finish(const RankLink& link);

  // Largest message of a rank's timeline on its way to rank 0.
  static constexpr size_t kChunkBytes = 4u << 20;

 private:
  // Rank 0: writes the trace file from its own timeline and every other rank's, in rank order.
  void write_trace(const RankLink& link, const std::string& mine) const;

  bool leader_;
  std::string trace_path_, plot_path_;
  std::optional<TraceRecorder> trace_;
  std::vector<StepStats> steps_;  // the leader's, with --plot
  std::vector<EvalStats> evals_;
};

}  // namespace weft::train
