// weft-train --trace and --plot end to end under weftrun: one Chrome trace with a process per
// rank whose rows nest as Perfetto draws them, gradient buckets reduced while backward still
// runs, pipeline messages and checkpoint writes on the timeline; and an SVG that is well-formed
// XML with a curve per series.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/train_harness.h"

namespace weft::testing {
namespace {

using nlohmann::json;

struct Span {
  std::string name;
  int tid;
  double start, end;  // microseconds
};

// A parsed trace: each process's name, each thread's name, and the spans of each process.
struct Trace {
  std::map<int, std::string> process_names;
  std::map<int, std::string> thread_names;
  std::map<int, std::vector<Span>> spans;  // by pid
};

Trace read_trace(const fs::path& path) {
  std::ifstream in(path);
  const json doc = json::parse(in);  // throws (fails the test) on invalid JSON
  Trace t;
  for (const json& e : doc.at("traceEvents")) {
    const std::string ph = e.at("ph");
    const int pid = e.at("pid");
    if (ph == "M" && e.at("name") == "process_name") t.process_names[pid] = e["args"]["name"];
    if (ph == "M" && e.at("name") == "thread_name") t.thread_names[e.at("tid")] = e["args"]["name"];
    if (ph != "X") continue;
    const double ts = e.at("ts"), dur = e.at("dur");
    EXPECT_GE(ts, 0) << e;
    EXPECT_GE(dur, 0) << e;
    t.spans[pid].push_back({e.at("name"), e.at("tid"), ts, ts + dur});
  }
  return t;
}

size_t count_named(const std::vector<Span>& spans, const std::string& name) {
  return static_cast<size_t>(
      std::count_if(spans.begin(), spans.end(), [&](const Span& s) { return s.name == name; }));
}

// Perfetto stacks the complete events of a thread by nesting: two spans of one thread are
// disjoint or one holds the other. The file's times are exact to the nanosecond, so exactly.
void expect_nested_per_thread(const std::vector<Span>& spans) {
  std::map<int, std::vector<Span>> by_thread;
  for (const Span& s : spans) by_thread[s.tid].push_back(s);
  for (auto& [tid, list] : by_thread) {
    std::sort(list.begin(), list.end(), [](const Span& a, const Span& b) {
      return a.start != b.start ? a.start < b.start : a.end > b.end;
    });
    std::vector<const Span*> open;  // the spans holding the current one
    for (const Span& s : list) {
      while (!open.empty() && open.back()->end <= s.start) open.pop_back();
      if (!open.empty()) {
        EXPECT_LE(s.end, open.back()->end)
            << "thread " << tid << ": " << s.name << " at " << s.start << " overlaps "
            << open.back()->name << " at " << open.back()->start << " without nesting in it";
      }
      open.push_back(&s);
    }
  }
}

// Whether some span named `comm` overlaps a backward on another thread of the same rank: a
// bucket reduced while backward was still running.
bool communication_overlaps_backward(const std::vector<Span>& spans, const std::string& comm) {
  for (const Span& b : spans) {
    if (b.name != "backward") continue;
    for (const Span& c : spans)
      if (c.name == comm && c.tid != b.tid && c.start < b.end && c.end > b.start) return true;
  }
  return false;
}

// Checks that `svg` is well-formed XML in the subset SVG uses here (elements, attributes in
// quotes, text, an XML declaration) and returns how many of each element it holds.
std::map<std::string, int> svg_elements(const std::string& svg) {
  std::map<std::string, int> count;
  std::vector<std::string> open;
  size_t i = 0;
  while ((i = svg.find('<', i)) != std::string::npos) {
    const size_t end = svg.find('>', i);
    EXPECT_NE(end, std::string::npos) << "unclosed tag at " << i;
    if (end == std::string::npos) break;
    const std::string tag = svg.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.rfind("?xml", 0) == 0) continue;
    EXPECT_EQ(std::count(tag.begin(), tag.end(), '"') % 2, 0) << "unbalanced quotes: " << tag;
    if (tag[0] == '/') {
      EXPECT_FALSE(open.empty()) << "</" << tag << "> closes nothing";
      if (open.empty()) continue;
      EXPECT_EQ(tag.substr(1), open.back()) << "mismatched closing tag";
      open.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
    count[name]++;
    if (tag.back() != '/') open.push_back(name);
  }
  EXPECT_TRUE(open.empty()) << "unclosed <" << (open.empty() ? "" : open.back()) << ">";
  EXPECT_EQ(count["svg"], 1);
  return count;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Backward takes milliseconds, and its first buckets are ready well before it ends: the
// communicator's executor takes a queued op within about a millisecond (comm/executor.h), so
// a model much smaller than this finishes backward before any bucket starts.
const Args kModel = {"--layers", "2", "--d-model", "128",  "--heads",  "4", "--seq",       "64",
                     "--batch",  "8", "--lr",      "3e-3", "--warmup", "2", "--bucket-mb", "0.25"};

// Data parallelism on 2 ranks with evaluations and checkpoints: every phase of a step, each
// bucket's reduction beside backward, checkpoint writes on their own row, and the plot.
TEST_F(Train, TraceHasATrackPerRankWithBucketsReducedDuringBackwardAndAPlot) {
  Args flags = kModel;
  flags.insert(flags.end(),
               {"--micro-batch", "2", "--steps", "10", "--eval-every", "5", "--ckpt-dir",
                (dir_ / "ckpt").string(), "--ckpt-every", "5", "--trace",
                (dir_ / "trace.json").string(), "--plot", (dir_ / "plot.svg").string()});
  WeftrunResult r = train(2, flags);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "[rank 0] trace: " + (dir_ / "trace.json").string())) << r.out;
  EXPECT_TRUE(contains(r.out, "[rank 0] plot: " + (dir_ / "plot.svg").string())) << r.out;

  const Trace t = read_trace(dir_ / "trace.json");
  ASSERT_EQ(t.spans.size(), 2u) << "one process per rank";
  int rank = 0;
  for (const auto& [pid, spans] : t.spans) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    EXPECT_EQ(t.process_names.at(pid), "rank " + std::to_string(rank));
    std::set<std::string> rows;
    for (const Span& s : spans) rows.insert(t.thread_names.at(s.tid));
    EXPECT_EQ(rows, (std::set<std::string>{"compute", "communication", "checkpoint writer"}));
    EXPECT_EQ(count_named(spans, "step"), 10u);
    EXPECT_EQ(count_named(spans, "forward"), 20u);  // 2 micro-batches a step
    EXPECT_EQ(count_named(spans, "backward"), 20u);
    EXPECT_EQ(count_named(spans, "optimizer"), 10u);
    EXPECT_EQ(count_named(spans, "evaluate"), 2u);
    EXPECT_EQ(count_named(spans, "checkpoint write"), 2u);
    EXPECT_GE(count_named(spans, "allreduce bucket"), 10u * 3);  // buckets of 0.25 MB
    expect_nested_per_thread(spans);
    EXPECT_TRUE(communication_overlaps_backward(spans, "allreduce bucket"))
        << "no bucket's reduction ran while backward did";
    rank++;
  }

  const std::map<std::string, int> svg = svg_elements(read_file(dir_ / "plot.svg"));
  EXPECT_EQ(svg.at("polyline"), 3) << "loss, held-out loss, tokens/s";
}

// A pipeline of 2 stages, each replicated twice: its sends and receives on the timeline of
// every rank, beside the data-parallel buckets, 4 processes in all.
TEST_F(Train, TraceShowsPipelineSendsAndReceivesOnEveryRank) {
  Args flags = kModel;
  flags.insert(flags.end(), {"--micro-batch", "1", "--pp", "2", "--steps", "3", "--zero1",
                             "--trace", (dir_ / "trace.json").string()});
  WeftrunResult r = train(4, flags);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const Trace t = read_trace(dir_ / "trace.json");
  ASSERT_EQ(t.spans.size(), 4u) << "one process per rank";
  ASSERT_EQ(t.process_names.size(), 4u);
  for (const auto& [pid, spans] : t.spans) {
    SCOPED_TRACE(t.process_names.at(pid));
    size_t sends = 0, receives = 0;
    for (const Span& s : spans) {
      sends += contains(s.name, "send_");
      receives += contains(s.name, "recv_");
    }
    EXPECT_GT(sends, 0u);
    EXPECT_GT(receives, 0u);
    EXPECT_GT(count_named(spans, "reduce-scatter bucket"), 0u);
    EXPECT_GT(count_named(spans, "allgather parameters"), 0u);
    EXPECT_EQ(count_named(spans, "step"), 3u);
    expect_nested_per_thread(spans);
  }
}

TEST_F(Train, ATracePathThatCannotBeWrittenStopsEveryRankBeforeStepOne) {
  Args flags = kModel;
  flags.insert(flags.end(),
               {"--steps", "2", "--trace", (dir_ / "no" / "such" / "t.json").string()});
  WeftrunResult r = train(2, flags);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(contains(
      r.err, "--trace " + (dir_ / "no" / "such" / "t.json").string() + ": cannot write it"))
      << r.err;
  EXPECT_FALSE(contains(r.out, "] step ")) << r.out;
}

// A run that diverges stops with exit 1 but still leaves its plot and trace, whole, with the
// steps it ran; the older plot at the path stays until the new one replaces it, and no
// temporary file is left beside them.
TEST_F(Train, ADivergingRunStillLeavesItsTraceAndPlot) {
  const fs::path trace = dir_ / "trace.json", plot = dir_ / "plot.svg";
  std::ofstream(plot) << "an older plot";
  WeftrunResult r = train(2, {"--layers", "1", "--d-model", "32", "--heads", "2", "--seq", "16",
                              "--batch", "4", "--steps", "30", "--lr", "1e9", "--trace",
                              trace.string(), "--plot", plot.string()});
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string where = "the run diverged at step ";
  const size_t at = r.err.find(where);
  ASSERT_NE(at, std::string::npos) << r.err;
  const int last = std::stoi(r.err.substr(at + where.size()));
  ASSERT_GE(last, 2) << r.err;  // step 1's loss is the untrained model's
  EXPECT_TRUE(contains(r.out, "[rank 0] trace: " + trace.string())) << r.out;
  EXPECT_TRUE(contains(r.out, "[rank 0] plot: " + plot.string())) << r.out;

  const std::string svg = read_file(plot);
  EXPECT_TRUE(contains(svg, "steps 1 to " + std::to_string(last) + "<")) << svg.substr(0, 600);
  EXPECT_EQ(svg_elements(svg).at("polyline"), 2) << "loss, tokens/s";

  const Trace t = read_trace(trace);
  ASSERT_EQ(t.spans.size(), 2u) << "one process per rank";
  for (const auto& [pid, spans] : t.spans) {
    SCOPED_TRACE(t.process_names.at(pid));
    EXPECT_EQ(count_named(spans, "step"), static_cast<size_t>(last));
  }
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_FALSE(contains(entry.path().filename().string(), ".tmp.")) << entry.path();
}

}  // namespace
}  // namespace weft::testing
