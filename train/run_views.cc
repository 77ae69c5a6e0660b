#include "train/run_views.h"

#include <cerrno>
#include <cstring>

#include "runtime/error.h"
#include "train/loss_plot.h"

namespace weft::train {

RunViews::RunViews(const TrainOptions& options, int rank)
    : leader_(rank == 0), trace_path_(options.trace), plot_path_(options.plot) {
  if (!trace_path_.empty()) trace_.emplace(rank);
  if (!leader_) return;
  if (!trace_path_.empty()) trace_file_ = open("--trace", trace_path_);
  if (!plot_path_.empty()) plot_file_ = open("--plot", plot_path_);
}

RunViews::File RunViews::open(const std::string& flag, const std::string& path) {
  File f(std::fopen(path.c_str(), "w"));
  if (!f)
    throw Error(ErrorCode::InvalidArgument, flag + " " + path + ": cannot write it (" +
                                                std::strerror(errno) +
                                                "); give a path in a directory that exists");
  return f;
}

void RunViews::write(File file, const std::string& path, const std::string& text) {
  const bool written = std::fwrite(text.data(), 1, text.size(), file.get()) == text.size();
  if (!written || std::fclose(file.release()) != 0)
    throw Error(ErrorCode::Io, "could not write " + path + ": " + std::strerror(errno));
}

void RunViews::start_clock() {
  if (trace_) trace_->set_origin(Clock::now());
}

void RunViews::add(const StepStats& s) {
  if (plot_file_) steps_.push_back(s);
}

void RunViews::add(const EvalStats& e) {
  if (plot_file_) evals_.push_back(e);
}

std::vector<std::string> RunViews::finish(const GatherWords& gather) {
  std::vector<std::string> lines;
  if (trace_) {
    if (const size_t dropped = trace_->dropped(); dropped > 0)
      std::fprintf(stderr,
                   "weft-train: the trace holds this rank's first %zu spans; %zu later ones were "
                   "left out\n",
                   TraceRecorder::kMaxSpans, dropped);
    const std::vector<std::string> ranks = gather_text(trace_->events_json(), gather);
    if (leader_) {
      write(std::move(trace_file_), trace_path_, trace_document(ranks));
      lines.push_back("trace: " + trace_path_ + " (" + std::to_string(ranks.size()) +
                      " ranks; open it in https://ui.perfetto.dev, Open trace file)");
    }
  }
  if (plot_file_) {
    write(std::move(plot_file_), plot_path_, loss_plot_svg(steps_, evals_));
    lines.push_back("plot: " + plot_path_ +
                    " (loss, held-out loss and tokens/s; open it in a "
                    "browser)");
  }
  return lines;
}

}  // namespace weft::train
