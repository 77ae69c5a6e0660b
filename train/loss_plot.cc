#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <tuple>

namespace weft::train {
namespace {

constexpr double kWidth = 960, kHeight = 680;
constexpr double kLeft = 90, kRight = 30;  // room for the y tick labels and the axis name
constexpr const char* kLossColor = "#1f77b4";
constexpr const char* kEvalColor = "#d62728";
constexpr const char* kRateColor = "#2ca02c";

struct Point {
  double x, y;
};

// A tick's label: as many decimals as the ticks' spacing needs ("4.5", "0.25", "120"), and
// thousands as "k" once they reach five digits ("150k", "12.5k").
std::string number(double v, double spacing, double largest) {
  const char* suffix = "";
  if (largest >= 1e4) {
    v /= 1e3;
    spacing /= 1e3;
    suffix = "k";
  }
  if (std::fabs(v) < spacing * 1e-6) return "0";  // also -0 and rounding residue
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(spacing) - 1e-9)));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, v, suffix);
  return buf;
}

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// One panel: a box at (left, top) of the given size mapping [x0, x1] x [y0, y1] onto it.
struct Panel {
  double left, top, width, height;
  double x0, x1, y0, y1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * width; }
  double py(double y) const { return top + height - (y - y0) / (y1 - y0) * height; }
};

// The panel's frame, grid lines and tick labels, and its y axis's name, rotated along it.
void draw_axes(std::string& svg, const Panel& p, const std::vector<double>& xticks,
               const std::vector<double>& yticks, const std::string& y_name, bool x_labels) {
  const double xs = xticks.size() > 1 ? xticks[1] - xticks[0] : 1;
  const double ys = yticks.size() > 1 ? yticks[1] - yticks[0] : 1;
  const double x_largest = std::max(std::fabs(xticks.front()), std::fabs(xticks.back()));
  const double y_largest = std::max(std::fabs(yticks.front()), std::fabs(yticks.back()));
  svg += "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
  for (double x : xticks)
    svg += "<line x1=\"" + fixed(p.px(x)) + "\" y1=\"" + fixed(p.top) + "\" x2=\"" +
           fixed(p.px(x)) + "\" y2=\"" + fixed(p.top + p.height) + "\"/>\n";
  for (double y : yticks)
    svg += "<line x1=\"" + fixed(p.left) + "\" y1=\"" + fixed(p.py(y)) + "\" x2=\"" +
           fixed(p.left + p.width) + "\" y2=\"" + fixed(p.py(y)) + "\"/>\n";
  svg += "</g>\n";
  svg += "<rect x=\"" + fixed(p.left) + "\" y=\"" + fixed(p.top) + "\" width=\"" + fixed(p.width) +
         "\" height=\"" + fixed(p.height) +
         "\" fill=\"none\" stroke=\"#444\" stroke-width=\"1\"/>\n";
  svg += "<g font-size=\"12\" fill=\"#333\">\n";
  if (x_labels)
    for (double x : xticks)
      svg += "<text x=\"" + fixed(p.px(x)) + "\" y=\"" + fixed(p.top + p.height + 17) +
             "\" text-anchor=\"middle\">" + number(x, xs, x_largest) + "</text>\n";
  for (double y : yticks)
    svg += "<text x=\"" + fixed(p.left - 6) + "\" y=\"" + fixed(p.py(y) + 4) +
           "\" text-anchor=\"end\">" + number(y, ys, y_largest) + "</text>\n";
  svg += "</g>\n";
  const double cx = p.left - 62, cy = p.top + p.height / 2;
  svg += "<text x=\"" + fixed(cx) + "\" y=\"" + fixed(cy) + "\" transform=\"rotate(-90 " +
         fixed(cx) + " " + fixed(cy) + ")\" text-anchor=\"middle\" font-size=\"14\">" + y_name +
         "</text>\n";
}

// A curve; with markers (few points, as evaluations are) dashed, so that a denser curve under
// it still shows.
void draw_series(std::string& svg, const Panel& p, const std::vector<Point>& points,
                 const char* color, bool markers) {
  if (points.empty()) return;
  svg += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"1.6\"" +
         (markers ? " stroke-dasharray=\"6 4\"" : "") + " stroke-linejoin=\"round\" points=\"";
  for (const Point& q : points) svg += fixed(p.px(q.x)) + "," + fixed(p.py(q.y)) + " ";
  svg += "\"/>\n";
  if (!markers) return;
  svg += "<g fill=\"" + std::string(color) + "\">\n";
  for (const Point& q : points)
    svg += "<circle cx=\"" + fixed(p.px(q.x)) + "\" cy=\"" + fixed(p.py(q.y)) + "\" r=\"3.5\"/>\n";
  svg += "</g>\n";
}

// A legend above the panel, right-aligned, so it never hides a curve: a line sample (and
// marker) and a name per series.
void draw_legend(std::string& svg, const Panel& p,
                 const std::vector<std::tuple<const char*, const char*, bool>>& entries) {
  constexpr double kCharWidth = 7.2;  // of the 13 px sans-serif, near enough
  double x = p.left + p.width;
  const double y = p.top - 9;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    const auto& [name, color, marker] = *it;
    x -= 40 + kCharWidth * static_cast<double>(std::strlen(name));
    svg += "<line x1=\"" + fixed(x) + "\" y1=\"" + fixed(y - 4) + "\" x2=\"" + fixed(x + 26) +
           "\" y2=\"" + fixed(y - 4) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" +
           (marker ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    if (marker)
      svg += "<circle cx=\"" + fixed(x + 13) + "\" cy=\"" + fixed(y - 4) + "\" r=\"3.5\" fill=\"" +
             color + "\"/>\n";
    svg += "<text x=\"" + fixed(x + 32) + "\" y=\"" + fixed(y) + "\" font-size=\"13\">" + name +
           "</text>\n";
    x -= 14;  // between entries
  }
}

// Widens [lo, hi] to hold every point's y.
void widen(const std::vector<Point>& points, double& lo, double& hi) {
  for (const Point& q : points) {
    lo = std::min(lo, q.y);
    hi = std::max(hi, q.y);
  }
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) {  // one value (or none): a unit around it, or a millionth of a large one
    const double half = std::max(0.5, std::fabs(lo) * 1e-6);
    lo -= half;
    hi += half;
  }
  // Not finer than the values' own precision: 1e16 + 0.5 is 1e16, and ticks that close would
  // repeat (or, spacing rounding to 0, never reach hi).
  const double raw = std::max((hi - lo) / std::max(1, target),
                              std::max(std::fabs(lo), std::fabs(hi)) * 1e-12);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double spacing = magnitude * 10;
  for (double f : {1.0, 2.0, 5.0})
    if (f * magnitude >= raw) {
      spacing = f * magnitude;
      break;
    }
  // Values near the largest double leave no room for round ticks: the axis ends at the values.
  if (!(spacing > 0) || !std::isfinite(spacing)) return {lo, hi};
  std::vector<double> ticks;
  const double first = std::floor(lo / spacing + 1e-9) * spacing;
  for (int i = 0; first + i * spacing < hi + spacing * (1 - 1e-9); i++)
    ticks.push_back(first + i * spacing);  // not a running sum: its error would show in labels
  if (ticks.empty()) return {lo, hi};
  // The last tick at or above hi.
  if (ticks.back() < hi - spacing * 1e-9) ticks.push_back(ticks.back() + spacing);
  return ticks;
}

std::string loss_plot_svg(const std::vector<StepStats>& steps,
                          const std::vector<EvalStats>& evals) {
  std::vector<Point> loss, eval, rate;
  auto keep = [](std::vector<Point>& into, double x, double y) {
    if (std::isfinite(y)) into.push_back({x, y});
  };
  for (const StepStats& s : steps) {
    keep(loss, s.step, s.loss);
    keep(rate, s.step, s.tokens_per_s);
  }
  for (const EvalStats& e : evals) keep(eval, e.step, e.loss);

  double x0 = std::numeric_limits<double>::max(), x1 = std::numeric_limits<double>::lowest();
  for (const auto* series : {&loss, &eval, &rate})
    for (const Point& q : *series) {
      x0 = std::min(x0, q.x);
      x1 = std::max(x1, q.x);
    }
  if (x0 > x1) {  // nothing to draw
    x0 = 0;
    x1 = 1;
  }
  const std::vector<double> xticks = nice_ticks(x0, x1, 8);

  double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
  widen(loss, lo, hi);
  widen(eval, lo, hi);
  if (lo > hi) {
    lo = 0;
    hi = 1;
  }
  const std::vector<double> loss_ticks = nice_ticks(lo, hi, 6);
  double rate_hi = 0;
  for (const Point& q : rate) rate_hi = std::max(rate_hi, q.y);
  // Throughput from zero: a dip reads as what it costs, not as a cliff.
  const std::vector<double> rate_ticks = nice_ticks(0, rate_hi > 0 ? rate_hi : 1, 4);

  const double width = kWidth - kLeft - kRight;
  const Panel top{
      kLeft, 70, width, 320, xticks.front(), xticks.back(), loss_ticks.front(), loss_ticks.back()};
  const Panel bottom{
      kLeft, 450, width, 160, xticks.front(), xticks.back(), rate_ticks.front(), rate_ticks.back()};

  std::string svg =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" +
      fixed(kWidth) + "\" height=\"" + fixed(kHeight) + "\" viewBox=\"0 0 " + fixed(kWidth) + " " +
      fixed(kHeight) + "\" font-family=\"sans-serif\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  const std::string title = steps.empty()
                                ? "weft-train: no steps"
                                : "weft-train: steps " + std::to_string(steps.front().step) +
                                      " to " + std::to_string(steps.back().step);
  svg += "<text x=\"" + fixed(kWidth / 2) +
         "\" y=\"28\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">" + title +
         "</text>\n";

  draw_axes(svg, top, xticks, loss_ticks, "loss (nats per byte)", false);
  draw_series(svg, top, loss, kLossColor, false);
  draw_series(svg, top, eval, kEvalColor, true);
  std::vector<std::tuple<const char*, const char*, bool>> legend = {
      {"training loss", kLossColor, false}};
  if (!eval.empty()) legend.emplace_back("held-out loss", kEvalColor, true);
  draw_legend(svg, top, legend);

  draw_axes(svg, bottom, xticks, rate_ticks, "tokens/s", true);
  draw_series(svg, bottom, rate, kRateColor, false);
  draw_legend(svg, bottom, {{"tokens/s (all ranks)", kRateColor, false}});
  svg += "<text x=\"" + fixed(kLeft + width / 2) + "\" y=\"" + fixed(kHeight - 18) +
         "\" text-anchor=\"middle\" font-size=\"14\">step</text>\n";
  svg += "</svg>\n";
  return svg;
}

}  // namespace weft::train
