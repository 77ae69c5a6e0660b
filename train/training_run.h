#pragma once
// What weft-train's loop drives, whichever device trains: the CPU Trainer (trainer.h) or the
// GPU one (cuda_trainer.h).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "models/gpt_layout.h"
#include "parallel/adamw_segments.h"
#include "runtime/trace.h"
#include "train/step_log.h"

namespace weft::train {

// What a checkpoint holds of a rank (train/checkpointing.h): its tensors as the shard layout
// describes them, its optimizer moments' layout, and which of them this rank writes (each value
// is written once in the job: by the first data-parallel replica, tp rank 0 for a tensor every
// tp rank holds whole, the first stage for the tied embedding; ZeRO-1 moments by their owner).
struct CheckpointLayout {
  std::vector<models::ParamTensor> tensors;  // offsets in the flat parameter buffer
  std::vector<bool> writes;                  // per tensor
  std::vector<parallel::AdamWSegment> segments;
  size_t elements = 0;  // of the flat parameter buffer, padding included
  bool writes_params = false;
  bool writes_moments = false;
};

class TrainingRun {
 public:
  virtual ~TrainingRun() = default;
  // Runs training step `step` (from 1) over global batch `step - 1` of the corpus.
  virtual StepStats step(int step) = 0;
  // Mean loss over `batch` held-out sequences, split across the ranks.
  virtual EvalStats evaluate(int step) = 0;
  virtual size_t parameter_count() const = 0;
  // A checksum of the parameters this replica initialised from --seed, for
  // check_replicas_agree (rank_agreement.h).
  virtual uint64_t initial_checksum() const = 0;
  // Every rank's `mine` (the same number of words on each), rank by rank: an allgather over the
  // trainer's communicator, in memory its backend takes.
  virtual std::vector<uint64_t> allgather_words(const std::vector<uint64_t>& mine) = 0;
  // `bytes` of host memory to, or from, world rank `peer`: a send or receive over the same
  // communicator, in memory its backend takes. Returns once the message is on its way or in.
  virtual void send_bytes(const void* data, size_t bytes, int peer) = 0;
  virtual void recv_bytes(void* data, size_t bytes, int peer) = 0;
  // Where the steps' phases, gradient buckets and pipeline messages go on the rank's timeline
  // (weft-train --trace); null, the default: nowhere.
  virtual void set_trace(TraceRecorder* trace) = 0;

  // Checkpoints, between steps: the layout, and the state in host memory, f32 throughout: the
  // (master) parameters, `layout.elements` of them, and AdamW's first and second moments, laid
  // out by `layout.segments`. AdamW's step counter is the training step.
  virtual CheckpointLayout checkpoint_layout() const = 0;
  virtual void state_to_host(float* params, float* m, float* v) = 0;
  virtual void state_from_host(const float* params, const float* m, const float* v) = 0;
};

}  // namespace weft::train
