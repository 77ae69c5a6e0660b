#pragma once
// weft-train's checkpoints (--ckpt-dir D --ckpt-every K --keep N --resume), in the format of
// checkpoint/ (D/step-00000100/rank-00003.safetensors, MANIFEST.json, LATEST).
//
// Saving: between steps every rank copies its state into host memory (a snapshot), then a
// background thread writes the rank's shard while training goes on; the next snapshot waits for
// that write. The step is committed once every rank's shard is in: by the job's coordinator
// where there is one (the thread reports to it and waits for the commit), else by rank 0 after
// the ranks gather their reports over the communicator, at the next save or at the end. Each
// checkpoint prints its write time and the share of it hidden behind training.
//
// Resuming: every rank loads the same committed step, reading only the byte ranges of the
// shards it needs under its own layout (any dp x tp x pp and ZeRO-1 that fits the model); a
// step with a torn or corrupted file (named) falls back to the one before it; a shard that is not
// there at all (a --ckpt-dir that the nodes do not share) fails the rank, naming it.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "checkpoint/manifest.h"
#include "checkpoint/reshard.h"
#include "checkpoint/shard_writer.h"
#include "comm/communicator.h"
#include "runtime/trace.h"
#include "train/train_options.h"
#include "train/training_run.h"

namespace weft::train {

class Checkpointing {
 public:
  // `options` resolved; `data_checksum` stands for --data in the manifest's flags. Nothing is
  // allocated without --ckpt-dir.
  Checkpointing(const TrainOptions& options, TrainingRun& run, comm::Communicator& world,
                uint64_t data_checksum);
  ~Checkpointing();  // waits for the write under way, committing nothing more
  Checkpointing(const Checkpointing&) = delete;
  Checkpointing& operator=(const Checkpointing&) = delete;

  bool enabled() const { return !options_.ckpt_dir.empty(); }
  // After step `step` of the loop: a checkpoint when --ckpt-every says so.
  void after_step(int step);
  // Collective, between steps, after step `step`: snapshots the state and writes it in the
  // background (after the previous write is done). With `wait_for_commit`, returns once the step
  // is committed, and throws if it could not be; otherwise a failed checkpoint is reported and
  // training goes on. Saving the step saved last only waits for it.
  void save(int step, bool wait_for_commit);
  // Collective, before step 1: loads the newest committed checkpoint every rank can read whole
  // and returns its step, the one to continue after (0: nothing to resume).
  int resume();
  // Collective: waits for the last write and its commit.
  void finish();
  // Where snapshots and waits (compute row) and shard writes (checkpoint writer row) go on the
  // rank's timeline; null, the default: nowhere.
  void set_trace(TraceRecorder* trace) { trace_ = trace; }

 private:
  struct Pending;
  nlohmann::json job_for(int step) const;
  void write(Pending& p);  // on the background thread; never throws
  void settle(bool must_commit);
  void commit_among_ranks(Pending& p);
  bool load(int step);  // collective; whether every rank loaded `step`
  void check_model_flags(const checkpoint::Manifest& m) const;
  void check_shards_are_there(const checkpoint::Manifest& m,
                              const std::vector<checkpoint::CopyRun>& runs) const;

  TrainOptions options_;
  TrainingRun& run_;
  comm::Communicator& world_;
  comm::CheckpointCommitter* committer_;
  std::filesystem::path dir_;
  nlohmann::json job_;
  CheckpointLayout layout_;
  std::vector<float> params_, m_, v_;          // the snapshot
  std::vector<checkpoint::PieceData> pieces_;  // what this rank writes, pointing into them
  std::unique_ptr<Pending> pending_;
  std::thread writer_;
  TraceRecorder* trace_ = nullptr;
};

}  // namespace weft::train
