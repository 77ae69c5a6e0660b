#pragma once
// The picture of a run (weft-train --plot FILE.svg): two panels over the same step axis, the
// loss above (the training loss of every step, the held-out loss at each evaluation) and the
// throughput below (tokens/s), each with round ticks, grid lines, axis labels and a legend.
// Plain SVG 1.1 written by hand (no script, no external font or library): any browser shows it.
#include <string>
#include <vector>

#include "train/step_log.h"

namespace weft::train {

// The SVG document. Non-finite values are left out; no steps draws empty axes.
std::string loss_plot_svg(const std::vector<StepStats>& steps, const std::vector<EvalStats>& evals);

// Round tick values covering [lo, hi]: about `target` of them, 1, 2 or 5 times a power of ten
// apart, the first at or below lo and the last at or above hi (a wider axis, ending on ticks).
// At least two, increasing, for any finite lo and hi (lo == hi: a range around the value).
std::vector<double> nice_ticks(double lo, double hi, int target);

}  // namespace weft::train
