#include "runtime/trace.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace weft {
namespace {

constexpr const char* kRowNames[] = {"compute", "communication", "checkpoint writer"};
constexpr int kRows = 3;

// Perfetto gives pid 0 to the kernel's idle task, so rank r is process r + 1; thread ids are
// unique across the job, as the JSON importer expects.
int pid_of(int rank) { return rank + 1; }
int tid_of(int rank, int row) { return pid_of(rank) * 4 + row; }

// Names come from the code, but a quote or backslash must still not break the file.
void append_escaped(std::string& out, const std::string& text) {
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
  }
}

int64_t nanos(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// Microseconds (the format's unit) to the nanosecond, printed exactly from an integer, so a
// span that ends within its parent also does in the file: Perfetto nests them by these numbers.
void append_micros(std::string& out, int64_t ns) {
  char buf[32];
  const char* sign = ns < 0 ? "-" : "";
  const uint64_t magnitude = ns < 0 ? -static_cast<uint64_t>(ns) : static_cast<uint64_t>(ns);
  std::snprintf(buf, sizeof buf, "%s%llu.%03llu", sign,
                static_cast<unsigned long long>(magnitude / 1000),
                static_cast<unsigned long long>(magnitude % 1000));
  out += buf;
}

void append_metadata(std::string& out, const char* what, int pid, int tid, const char* arg,
                     const std::string& value, bool quoted) {
  char head[160];
  std::snprintf(head, sizeof head, "{\"name\":\"%s\",\"ph\":\"M\",\"pid\":%d", what, pid);
  out += head;
  if (tid >= 0) out += ",\"tid\":" + std::to_string(tid);
  out += std::string(",\"args\":{\"") + arg + "\":";
  out += quoted ? "\"" + value + "\"" : value;
  out += "}},\n";
}

}  // namespace

TraceRecorder::TraceRecorder(int rank) : rank_(rank) { spans_.reserve(4096); }

void TraceRecorder::record(TraceRow row, std::string name, Clock::time_point start,
                           Clock::time_point end, const TraceArg* args, size_t arg_count) {
  if (start == Clock::time_point{}) return;
  Span span{row, std::move(name), start, end, {}, std::min(arg_count, kMaxArgs)};
  std::copy(args, args + span.arg_count, span.args);
  std::lock_guard lock(mu_);
  if (spans_.size() >= kMaxSpans) {
    dropped_++;
    return;
  }
  spans_.push_back(std::move(span));
}

size_t TraceRecorder::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

std::string TraceRecorder::events_json() const {
  std::lock_guard lock(mu_);
  // In time order, a span before those it holds (recorded after them, when it ended): what
  // viewers that read events in order, nesting as they go, expect.
  std::vector<const Span*> order;
  order.reserve(spans_.size());
  for (const Span& s : spans_) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](const Span* a, const Span* b) {
    return a->start != b->start ? a->start < b->start : a->end > b->end;
  });
  const int pid = pid_of(rank_);
  std::string out;
  out.reserve(200 + spans_.size() * 150);
  append_metadata(out, "process_name", pid, -1, "name", "rank " + std::to_string(rank_), true);
  append_metadata(out, "process_sort_index", pid, -1, "sort_index", std::to_string(rank_), false);
  bool used[kRows] = {};
  for (const Span& s : spans_) used[static_cast<int>(s.row)] = true;
  for (int row = 0; row < kRows; row++) {
    if (!used[row]) continue;
    append_metadata(out, "thread_name", pid, tid_of(rank_, row), "name", kRowNames[row], true);
    append_metadata(out, "thread_sort_index", pid, tid_of(rank_, row), "sort_index",
                    std::to_string(row), false);
  }
  for (const Span* span : order) {
    const Span& s = *span;
    const int row = static_cast<int>(s.row);
    out += "{\"name\":\"";
    append_escaped(out, s.name);
    char fields[160];
    std::snprintf(fields, sizeof fields,
                  "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":", kRowNames[row],
                  pid, tid_of(rank_, row));
    out += fields;
    append_micros(out, nanos(s.start - origin_));
    out += ",\"dur\":";
    append_micros(out, nanos(s.end - s.start));
    if (s.arg_count > 0) {
      out += ",\"args\":{";
      for (size_t a = 0; a < s.arg_count; a++)
        out += std::string(a ? "," : "") + "\"" + s.args[a].key +
               "\":" + std::to_string(s.args[a].value);
      out += "}";
    }
    out += "},\n";
  }
  out.resize(out.size() - 2);  // the last ",\n": the metadata made at least one event
  return out;
}

std::string trace_document(const std::vector<std::string>& rank_events) {
  std::string out = kTraceHead;
  for (size_t r = 0; r < rank_events.size(); r++) {
    if (r > 0) out += kTraceSeparator;
    out += rank_events[r];
  }
  out += kTraceTail;
  return out;
}

}  // namespace weft
