#include "checkpoint/commit.h"

#include <algorithm>
#include <charconv>

#include "checkpoint/file_io.h"
#include "runtime/error.h"

namespace weft::checkpoint {
namespace {

// The step of a directory named step-XXXXXXXX, or nothing.
std::optional<int64_t> step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0) return std::nullopt;
  int64_t step = 0;
  auto [end, ec] = std::from_chars(name.data() + 5, name.data() + name.size(), step);
  if (ec != std::errc() || end != name.data() + name.size() || step < 0) return std::nullopt;
  return step;
}

std::vector<int64_t> step_dirs(const fs::path& dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (auto s = step_of(e.path().filename().string()); s && e.is_directory()) steps.push_back(*s);
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

void prune(const fs::path& dir, int64_t committed, int keep) {
  int kept = 0;
  for (int64_t s : step_dirs(dir)) {
    const fs::path d = dir / step_dir_name(s);
    const bool has_manifest = fs::exists(d / kManifestFile);
    if (has_manifest) kept++;
    // Never a step newer than this commit: another save may be writing it.
    if (s >= committed) continue;
    if ((has_manifest && keep > 0 && kept > keep) || !has_manifest) {
      std::error_code ec;
      fs::remove_all(d, ec);  // best effort: a leftover directory harms nothing
    }
  }
}

}  // namespace

void commit_step(const fs::path& dir, int64_t step, int world_size, const nlohmann::json& job,
                 std::vector<ShardReport> reports, int keep) {
  std::sort(reports.begin(), reports.end(),
            [](const auto& a, const auto& b) { return a.rank < b.rank; });
  const fs::path step_dir = dir / step_dir_name(step);
  if (reports.size() > static_cast<size_t>(world_size))
    throw Error(ErrorCode::InvalidArgument,
                "checkpoint step " + std::to_string(step) + ": " + std::to_string(reports.size()) +
                    " reports for a job of " + std::to_string(world_size) +
                    " ranks: not committed");
  for (size_t r = 0; r < static_cast<size_t>(world_size); r++) {
    if (r >= reports.size() || reports[r].rank != static_cast<int>(r))
      throw Error(ErrorCode::InvalidArgument, "checkpoint step " + std::to_string(step) +
                                                  ": no report from rank " + std::to_string(r) +
                                                  " of " + std::to_string(world_size) +
                                                  " (or two from one rank): not committed");
    std::error_code ec;
    const uint64_t size = fs::file_size(step_dir / reports[r].file, ec);
    if (ec || size != reports[r].bytes)
      throw Error(ErrorCode::Io,
                  "checkpoint step " + std::to_string(step) + ": rank " + std::to_string(r) +
                      " reported " + (step_dir / reports[r].file).string() + " of " +
                      std::to_string(reports[r].bytes) + " bytes, but it " +
                      (ec ? "is not there" : "has " + std::to_string(size)) + ": not committed");
  }
  Manifest m{step, job, std::move(reports)};
  m.job["format"] = kFormat;
  write_file_atomically(step_dir / kManifestFile, encode_manifest(m));
  write_file_atomically(dir / kLatestFile, step_dir_name(step) + "\n");
  prune(dir, step, keep);
}

std::optional<int64_t> latest_step(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir / kLatestFile, ec)) return std::nullopt;
  std::string text = read_whole_file(dir / kLatestFile);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return step_of(text);
}

std::vector<int64_t> committed_steps(const fs::path& dir) {
  std::vector<int64_t> steps;
  for (int64_t s : step_dirs(dir))
    if (fs::exists(dir / step_dir_name(s) / kManifestFile)) steps.push_back(s);
  return steps;
}

std::vector<int64_t> resume_candidates(const fs::path& dir) {
  std::vector<int64_t> steps = committed_steps(dir);
  if (std::optional<int64_t> latest = latest_step(dir)) {
    std::erase_if(steps, [&](int64_t s) { return s > *latest; });
    if (std::find(steps.begin(), steps.end(), *latest) == steps.end())
      steps.insert(steps.begin(), *latest);  // its manifest's absence is reported when read
  }
  return steps;
}

}  // namespace weft::checkpoint
