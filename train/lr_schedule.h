#pragma once
// Learning rate per step: linear warm-up to the peak, then cosine decay to a tenth of it at
// the last step (GPT-2 / nanoGPT practice).

namespace weft::train {

struct LrSchedule {
  double peak = 1e-3;
  int warmup = 10;
  int steps = 50;
  double floor_ratio = 0.1;

  // step counts from 1.
  double at(int step) const;
};

}  // namespace weft::train
