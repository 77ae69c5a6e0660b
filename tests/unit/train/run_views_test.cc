// RunViews end to end on three in-process ranks: rank 0 alone receives the others' timelines,
// each larger than a chunk, and streams them into one Chrome trace in rank order; the files at
// the paths are left as they were until the run's end replaces them whole.
#include "train/run_views.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/inproc_group.h"

namespace weft::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(RunViews, RankZeroStreamsEveryRanksTimelineInRankOrderAndReplacesTheFilesAtTheEnd) {
  const fs::path dir = fs::temp_directory_path() / ("run_views_test." + std::to_string(getpid()));
  fs::create_directories(dir);
  TrainOptions options;
  options.trace = (dir / "trace.json").string();
  options.plot = (dir / "plot.svg").string();
  std::ofstream(options.trace) << "an older trace";
  std::ofstream(options.plot) << "an older plot";
  // Rank 1 a few spans; rank 2 enough that its text takes two chunks and part of a third.
  const std::map<int, size_t> spans = {{0, 10}, {1, 3}, {2, 2 * RunViews::kChunkBytes / 100}};
  std::vector<std::string> leader_lines;
  testing::run_inproc_group(3, comm::CommOptions{}, [&](comm::Communicator& world) {
    // As a host trainer's TrainingRun::send_bytes and recv_bytes.
    const RankLink link{
        world.size(),
        [&](const void* data, size_t bytes, int peer) {
          world.send(Tensor::flat(const_cast<void*>(data), DType::u8, bytes), peer).wait();
        },
        [&](void* data, size_t bytes, int peer) {
          world.recv(Tensor::flat(data, DType::u8, bytes), peer).wait();
        }};
    RunViews views(options, world.rank());
    views.start_clock();
    const Clock::time_point t = Clock::now();
    for (size_t i = 0; i < spans.at(world.rank()); i++)
      views.trace()->record(TraceRow::compute, "span of rank " + std::to_string(world.rank()), t,
                            t + std::chrono::microseconds(i), {{"i", static_cast<int64_t>(i)}});
    views.add(StepStats{});
    if (world.rank() == 0) {
      EXPECT_EQ(read_file(options.trace), "an older trace");
      EXPECT_EQ(read_file(options.plot), "an older plot");
    }
    std::vector<std::string> lines = views.finish(link);
    if (world.rank() == 0) leader_lines = std::move(lines);
    else EXPECT_TRUE(lines.empty());
  });

  const std::string text = read_file(options.trace);
  EXPECT_GT(text.size(), 2 * RunViews::kChunkBytes);
  const json doc = json::parse(text);
  std::vector<int> process_order;
  std::map<int, size_t> spans_of;  // by rank
  for (const json& e : doc.at("traceEvents")) {
    const int rank = e.at("pid").get<int>() - 1;
    if (e.at("ph") == "M" && e.at("name") == "process_name") process_order.push_back(rank);
    if (e.at("ph") != "X") continue;
    EXPECT_EQ(e.at("name"), "span of rank " + std::to_string(rank));
    spans_of[rank]++;
  }
  EXPECT_EQ(process_order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(spans_of, spans);
  EXPECT_NE(read_file(options.plot).find("</svg>"), std::string::npos);
  ASSERT_EQ(leader_lines.size(), 2u);
  EXPECT_NE(leader_lines[0].find("3 ranks"), std::string::npos) << leader_lines[0];
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) files++;
  EXPECT_EQ(files, 2u) << "no temporary file is left";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace weft::train
