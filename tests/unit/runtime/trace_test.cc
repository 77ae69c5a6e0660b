#include "runtime/trace.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

namespace weft {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json events_named(const json& doc, const std::string& ph, const std::string& name) {
  json out = json::array();
  for (const json& e : doc["traceEvents"])
    if (e["ph"] == ph && e["name"] == name) out.push_back(e);
  return out;
}

TEST(TraceRecorder, WritesAProcessPerRankWithTheRowsItUsedAndExactTimes) {
  const Clock::time_point t0 = Clock::now();
  TraceRecorder rank0(0), rank3(3);
  rank0.set_origin(t0);
  rank3.set_origin(t0);
  rank0.record(TraceRow::compute, "backward", t0 + 1500ns, t0 + 2'501'000ns, {{"step", 7}});
  rank3.record(TraceRow::communication, "allreduce bucket", t0 + 2ms, t0 + 3ms,
               {{"bucket", 1}, {"bytes", 1 << 20}});
  const json doc = json::parse(trace_document({rank0.events_json(), rank3.events_json()}));

  const json processes = events_named(doc, "M", "process_name");
  ASSERT_EQ(processes.size(), 2u);
  // Perfetto keeps pid 0 for the kernel: rank r is process r + 1.
  EXPECT_EQ(processes[0]["pid"], 1);
  EXPECT_EQ(processes[0]["args"]["name"], "rank 0");
  EXPECT_EQ(processes[1]["pid"], 4);
  EXPECT_EQ(processes[1]["args"]["name"], "rank 3");
  const json threads = events_named(doc, "M", "thread_name");
  ASSERT_EQ(threads.size(), 2u);  // only the rows that hold spans
  EXPECT_EQ(threads[0]["args"]["name"], "compute");
  EXPECT_EQ(threads[1]["args"]["name"], "communication");
  EXPECT_NE(threads[0]["tid"], threads[1]["tid"]);

  const json backward = events_named(doc, "X", "backward");
  ASSERT_EQ(backward.size(), 1u);
  EXPECT_EQ(backward[0]["pid"], 1);
  EXPECT_EQ(backward[0]["tid"], threads[0]["tid"]);
  EXPECT_EQ(backward[0]["ts"].get<double>(), 1.5);  // microseconds, to the nanosecond
  EXPECT_EQ(backward[0]["dur"].get<double>(), 2499.5);
  EXPECT_EQ(backward[0]["args"]["step"], 7);
  const json bucket = events_named(doc, "X", "allreduce bucket");
  ASSERT_EQ(bucket.size(), 1u);
  EXPECT_EQ(bucket[0]["ts"].get<double>(), 2000.0);
  EXPECT_EQ(bucket[0]["args"]["bytes"], 1 << 20);
}

TEST(TraceRecorder, ThreadsRecordTogetherAndAScopeRecordsOnlyWithARecorder) {
  TraceRecorder trace(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&trace, t] {
      for (int i = 0; i < 500; i++)
        TraceScope span(&trace, t % 2 ? TraceRow::checkpoint : TraceRow::compute, "work",
                        {{"thread", t}, {"i", i}});
    });
  for (auto& t : threads) t.join();
  { TraceScope nothing(nullptr, TraceRow::compute, "never"); }
  const json doc = json::parse(trace_document({trace.events_json()}));
  EXPECT_EQ(events_named(doc, "X", "work").size(), 2000u);
  EXPECT_TRUE(events_named(doc, "X", "never").empty());
}

TEST(TraceRecorder, KeepsAtMostItsLimitAndCountsTheRest) {
  TraceRecorder trace(0);
  const Clock::time_point t = Clock::now();
  for (size_t i = 0; i < TraceRecorder::kMaxSpans + 5; i++)
    trace.record(TraceRow::compute, "s", t, t);
  EXPECT_EQ(trace.dropped(), 5u);
}

TEST(TraceRecorder, NamesAreEscaped) {
  TraceRecorder trace(0);
  const Clock::time_point t = Clock::now();
  trace.record(TraceRow::compute, "a \"quoted\" \\ name", t, t);
  const json doc = json::parse(trace_document({trace.events_json()}));
  EXPECT_EQ(events_named(doc, "X", "a \"quoted\" \\ name").size(), 1u);
}

// comm::Work::started_at() of an op whose communicator records no op times is the clock's epoch:
// such a span is left out rather than drawn hours before time zero.
TEST(TraceRecorder, LeavesOutSpansThatStartAtTheClocksEpoch) {
  TraceRecorder trace(0);
  const Clock::time_point t = Clock::now();
  trace.set_origin(t);
  trace.record(TraceRow::communication, "untimed", Clock::time_point{}, Clock::time_point{});
  trace.record(TraceRow::communication, "timed", t, t + 1ms);
  const json doc = json::parse(trace_document({trace.events_json()}));
  EXPECT_TRUE(events_named(doc, "X", "untimed").empty());
  const json timed = events_named(doc, "X", "timed");
  ASSERT_EQ(timed.size(), 1u);
  EXPECT_EQ(timed[0]["ts"], 0);
}

}  // namespace
}  // namespace weft
