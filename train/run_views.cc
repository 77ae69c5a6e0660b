#include "train/run_views.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "checkpoint/file_io.h"
#include "runtime/error.h"
#include "runtime/unique_fd.h"
#include "train/loss_plot.h"

namespace weft::train {
namespace {

// Beside the file, so that renaming it into place stays on one file system; the same name as
// checkpoint::write_file_atomically's (unique per process).
std::string temporary_name(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

// Whether `path` could be written at the end of the run, found by creating a file beside it and
// removing it again: an existing file at `path` stays as it is until the new one replaces it.
void check_writable(const std::string& flag, const std::string& path) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::InvalidArgument, flag + " " + path + ": cannot write it (" + why +
                                                "); give a path in a directory that exists");
  };
  if (std::error_code ec; std::filesystem::is_directory(path, ec)) fail("it is a directory");
  const std::string probe = temporary_name(path);
  UniqueFd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) fail(std::strerror(errno));
  ::unlink(probe.c_str());
}

// A file written piece by piece under its temporary name and renamed into place by commit().
// A failed write is kept, not thrown, so that rank 0 still receives every rank's timeline (its
// peers would otherwise wait for it until their timeout); commit() throws it.
class StreamedFile {
 public:
  explicit StreamedFile(std::string path)
      : path_(std::move(path)), tmp_(temporary_name(path_)), file_(std::fopen(tmp_.c_str(), "w")) {
    if (!file_) failure_ = "creating " + tmp_ + ": " + std::strerror(errno);
  }
  ~StreamedFile() {
    if (file_) std::fclose(file_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  StreamedFile(const StreamedFile&) = delete;
  StreamedFile& operator=(const StreamedFile&) = delete;

  void write(const char* data, size_t bytes) {
    if (failure_.empty() && std::fwrite(data, 1, bytes, file_) != bytes)
      failure_ = "writing " + tmp_ + ": " + std::strerror(errno);
  }
  void write(const std::string& text) { write(text.data(), text.size()); }
  void commit() {
    if (failure_.empty() && std::fclose(std::exchange(file_, nullptr)) != 0)
      failure_ = "writing " + tmp_ + ": " + std::strerror(errno);
    if (failure_.empty() && ::rename(tmp_.c_str(), path_.c_str()) != 0)
      failure_ = "renaming " + tmp_ + " to " + path_ + ": " + std::strerror(errno);
    if (!failure_.empty()) throw Error(ErrorCode::Io, "could not write " + path_ + ": " + failure_);
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  std::FILE* file_;
  std::string failure_;
  bool committed_ = false;
};

// A rank's timeline to rank 0: its length, then its bytes in chunks of at most kChunkBytes.
void send_to_leader(const RankLink& link, const std::string& text) {
  const uint64_t bytes = text.size();
  link.send(&bytes, sizeof bytes, 0);
  for (size_t at = 0; at < text.size(); at += RunViews::kChunkBytes)
    link.send(text.data() + at, std::min(RunViews::kChunkBytes, text.size() - at), 0);
}

}  // namespace

RunViews::RunViews(const TrainOptions& options, int rank)
    : leader_(rank == 0), trace_path_(options.trace), plot_path_(options.plot) {
  if (!trace_path_.empty()) trace_.emplace(rank);
  if (!leader_) return;
  if (!trace_path_.empty()) check_writable("--trace", trace_path_);
  if (!plot_path_.empty()) check_writable("--plot", plot_path_);
}

void RunViews::start_clock() {
  if (trace_) trace_->set_origin(Clock::now());
}

void RunViews::add(const StepStats& s) {
  if (leader_ && !plot_path_.empty()) steps_.push_back(s);
}

void RunViews::add(const EvalStats& e) {
  if (leader_ && !plot_path_.empty()) evals_.push_back(e);
}

void RunViews::write_trace(const RankLink& link, const std::string& mine) const {
  StreamedFile file(trace_path_);
  file.write(kTraceHead);
  file.write(mine);
  std::vector<char> chunk(kChunkBytes);
  for (int rank = 1; rank < link.ranks; rank++) {
    uint64_t bytes = 0;
    link.recv(&bytes, sizeof bytes, rank);
    file.write(kTraceSeparator);
    for (uint64_t at = 0; at < bytes; at += kChunkBytes) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, bytes - at));
      link.recv(chunk.data(), n, rank);
      file.write(chunk.data(), n);
    }
  }
  file.write(kTraceTail);
  file.commit();
}

std::vector<std::string> RunViews::finish(const RankLink& link) {
  std::vector<std::string> lines;
  if (trace_) {
    if (const size_t dropped = trace_->dropped(); dropped > 0)
      std::fprintf(stderr,
                   "weft-train: the trace holds this rank's first %zu spans; %zu later ones were "
                   "left out\n",
                   TraceRecorder::kMaxSpans, dropped);
    const std::string mine = trace_->events_json();
    if (!leader_) {
      send_to_leader(link, mine);
    } else {
      write_trace(link, mine);
      lines.push_back("trace: " + trace_path_ + " (" + std::to_string(link.ranks) +
                      " ranks; open it in https://ui.perfetto.dev, Open trace file)");
    }
  }
  if (leader_ && !plot_path_.empty()) {
    checkpoint::write_file_atomically(plot_path_, loss_plot_svg(steps_, evals_));
    lines.push_back("plot: " + plot_path_ +
                    " (loss, held-out loss and tokens/s; open it in a "
                    "browser)");
  }
  return lines;
}

}  // namespace weft::train
