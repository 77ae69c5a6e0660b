#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace weft::train {

double LrSchedule::at(int step) const {
  if (step <= warmup) return peak * step / std::max(1, warmup);
  double floor = peak * floor_ratio;
  if (steps <= warmup) return peak;
  double progress = std::clamp(double(step - warmup) / double(steps - warmup), 0.0, 1.0);
  return floor + 0.5 * (peak - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace weft::train
