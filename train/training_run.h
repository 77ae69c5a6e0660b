#pragma once
// What weft-train's loop drives, whichever device trains: the CPU Trainer (trainer.h) or the
// GPU one (cuda_trainer.h).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "train/step_log.h"

namespace weft::train {

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
};

}  // namespace weft::train
