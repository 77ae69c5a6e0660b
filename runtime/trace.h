#pragma once
// A rank's timeline, for `weft-train --trace FILE`: coarse spans (a step's forward and backward,
// each gradient bucket's reduction, a pipeline send or receive, the optimizer, a checkpoint
// write) on a few rows of the rank, kept as Chrome trace events, the JSON that Perfetto
// (ui.perfetto.dev) and chrome://tracing open.
//
// Code that may trace holds a `TraceRecorder*` that is null when tracing is off, so a span then
// costs one pointer test. When on, a span costs two clock reads and an append under a mutex;
// spans are per phase, bucket or message, a few dozen per step, never per kernel.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/clock.h"

namespace weft {

// The rows of a rank's timeline (threads of its process in the trace): its compute thread, the
// communicator's executor thread that runs the gradient buckets' reductions beside backward,
// and the checkpoint writer's background thread.
enum class TraceRow : int { compute, communication, checkpoint };

// A number shown with a span ("step": 12, "bucket": 3, "bytes": 1048576).
struct TraceArg {
  const char* key;  // a string literal
  int64_t value;
};

class TraceRecorder {
 public:
  // Past this many spans a rank records no more and says how many it dropped (about 150 bytes
  // of JSON each: a long run's trace stays a file Perfetto opens).
  static constexpr size_t kMaxSpans = 1 << 18;
  static constexpr size_t kMaxArgs = 3;

  explicit TraceRecorder(int rank);
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  // Time zero of the timeline. Ranks set it just after leaving a collective together, so their
  // timelines line up within that collective's exit skew, on one machine or several (whose
  // steady clocks differ). Spans before it get negative times.
  void set_origin(Clock::time_point origin) { origin_ = origin; }
  // Thread-safe. `args`: at most kMaxArgs (the rest are left out). A span that starts at the
  // clock's epoch is left out: that is the start of an op nobody timed (comm::Work::started_at()
  // when its communicator does not record op times), and it would land hours before time zero.
  void record(TraceRow row, std::string name, Clock::time_point start, Clock::time_point end,
              const TraceArg* args, size_t arg_count);
  void record(TraceRow row, std::string name, Clock::time_point start, Clock::time_point end,
              std::initializer_list<TraceArg> args = {}) {
    record(row, std::move(name), start, end, args.begin(), args.size());
  }
  // This rank's trace events, JSON objects separated by ",\n": the names of its process
  // ("rank N") and rows, then its spans. Several ranks' texts joined by ",\n" inside
  // {"traceEvents": [...]} make the job's trace (trace_document()).
  std::string events_json() const;
  size_t dropped() const;

 private:
  struct Span {
    TraceRow row;
    std::string name;
    Clock::time_point start, end;
    TraceArg args[kMaxArgs];
    size_t arg_count;
  };
  int rank_;
  Clock::time_point origin_ = Clock::now();
  mutable std::mutex mu_;
  std::vector<Span> spans_;
  size_t dropped_ = 0;
};

// The whole trace file: kTraceHead, every rank's events_json() in rank order, each after the
// first preceded by kTraceSeparator, then kTraceTail. A writer that has the ranks' texts one at a
// time (weft-train's rank 0, receiving them) streams these pieces; trace_document() joins them.
inline constexpr const char* kTraceHead = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
inline constexpr const char* kTraceSeparator = ",\n";
inline constexpr const char* kTraceTail = "\n]}\n";
std::string trace_document(const std::vector<std::string>& rank_events);

// A span from construction to destruction, recorded when `recorder` is not null.
class TraceScope {
 public:
  TraceScope(TraceRecorder* recorder, TraceRow row, const char* name,
             std::initializer_list<TraceArg> args = {})
      : recorder_(recorder), row_(row), name_(name) {
    if (!recorder_) return;
    start_ = Clock::now();
    for (const TraceArg& a : args)
      if (arg_count_ < TraceRecorder::kMaxArgs) args_[arg_count_++] = a;
  }
  ~TraceScope() {
    if (!recorder_) return;
    recorder_->record(row_, name_, start_, Clock::now(), args_, arg_count_);
  }
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;

 private:
  TraceRecorder* recorder_;
  TraceRow row_;
  const char* name_;
  Clock::time_point start_;
  TraceArg args_[TraceRecorder::kMaxArgs] = {};
  size_t arg_count_ = 0;
};

}  // namespace weft
