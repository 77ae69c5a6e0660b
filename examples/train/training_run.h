#pragma once
// What weft-train's loop drives, whichever device trains: the CPU Trainer (trainer.h) or the
// GPU one (cuda_trainer.h).
#include <cstddef>

#include "examples/train/step_log.h"

namespace weft::train {

class TrainingRun {
 public:
  virtual ~TrainingRun() = default;
  // Runs training step `step` (from 1) over global batch `step - 1` of the corpus.
  virtual StepStats step(int step) = 0;
  // Mean loss over `batch` held-out sequences, split across the ranks.
  virtual EvalStats evaluate(int step) = 0;
  virtual size_t parameter_count() const = 0;
};

}  // namespace weft::train
