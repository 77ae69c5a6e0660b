#pragma once
// What weft-train leaves to look at beside its log: `--trace FILE`, every rank's timeline
// gathered by rank 0 into one Chrome trace (a process per rank, in Perfetto), and
// `--plot FILE.svg`, rank 0's picture of the loss, held-out loss and tokens/s against the step.
//
// The ranks' timelines are gathered over the job's communicator, not left as files for a
// launcher to merge: one file comes out whatever started the ranks (weftrun, torchrun, mpirun,
// srun) and whichever machines they ran on.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/trace.h"
#include "train/rank_agreement.h"
#include "train/step_log.h"
#include "train/train_options.h"

namespace weft::train {

class RunViews {
 public:
  // Opens the leader's files now, so that a path which cannot be written stops the job before
  // step 1 (InvalidArgument naming the flag and the path); with --trace every rank records.
  RunViews(const TrainOptions& options, int rank);

  // This rank's recorder, or null without --trace.
  TraceRecorder* trace() { return trace_ ? &*trace_ : nullptr; }
  // Time zero of every rank's timeline: each rank calls it just after the same collective.
  void start_clock();
  void add(const StepStats& s);
  void add(const EvalStats& e);
  // Collective with --trace (every rank's timeline goes to rank 0). The leader writes its files
  // and gets a line per file saying where it is and how to open it; Io naming the path when a
  // write fails.
  std::vector<std::string> finish(const GatherWords& gather);

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  using File = std::unique_ptr<std::FILE, Closer>;
  static File open(const std::string& flag, const std::string& path);
  static void write(File file, const std::string& path, const std::string& text);

  bool leader_;
  std::string trace_path_, plot_path_;
  File trace_file_, plot_file_;  // the leader's
  std::optional<TraceRecorder> trace_;
  std::vector<StepStats> steps_;
  std::vector<EvalStats> evals_;
};

}  // namespace weft::train
