#include "checkpoint/shard_reader.h"

#include <algorithm>
#include <cstring>

#include "checkpoint/checksum.h"
#include "checkpoint/file_io.h"
#include "runtime/error.h"

namespace weft::checkpoint {
namespace {

// Reads one file's runs (sorted by offset).
void read_file(const fs::path& path, const ShardReport& report, const std::vector<CopyRun>& runs,
               ReadStats& stats) {
  ReadOnlyFile file(path);
  if (file.size() != report.bytes)
    throw Error(ErrorCode::Corrupt, path.string() + " has " + std::to_string(file.size()) +
                                        " bytes, the manifest says " +
                                        std::to_string(report.bytes) + " (truncated or replaced)");
  const uint64_t B = report.block_bytes;
  std::vector<char> buffer;
  size_t i = 0;
  while (i < runs.size()) {
    // A span of whole blocks covering run i and every following run that starts inside it or
    // in the block right after.
    uint64_t begin = runs[i].file_offset / B * B;
    uint64_t end = begin;
    size_t j = i;
    while (j < runs.size() && runs[j].file_offset <= end + B) {
      const uint64_t run_end = runs[j].file_offset + runs[j].elements * sizeof(float);
      end = std::max(end, std::min(report.bytes, (run_end + B - 1) / B * B));
      j++;
    }
    buffer.resize(end - begin);
    file.read(begin, buffer.size(), buffer.data());
    stats.bytes_read += buffer.size();
    for (uint64_t at = begin; at < end; at += B) {
      const uint64_t n = std::min(B, end - at);
      if (xxh64(buffer.data() + (at - begin), n) != report.blocks[at / B])
        throw Error(ErrorCode::Corrupt, path.string() + ": bytes " + std::to_string(at) + ".." +
                                            std::to_string(at + n) +
                                            " do not match their checksum in the manifest "
                                            "(the file is corrupted)");
    }
    for (; i < j; i++)
      std::memcpy(runs[i].dst, buffer.data() + (runs[i].file_offset - begin),
                  runs[i].elements * sizeof(float));
  }
}

}  // namespace

ReadStats read_runs(const fs::path& step_dir, const Manifest& manifest, std::vector<CopyRun> runs) {
  std::sort(runs.begin(), runs.end(), [](const CopyRun& a, const CopyRun& b) {
    return a.shard != b.shard ? a.shard < b.shard : a.file_offset < b.file_offset;
  });
  ReadStats stats;
  for (size_t i = 0; i < runs.size();) {
    size_t j = i;
    while (j < runs.size() && runs[j].shard == runs[i].shard) j++;
    const ShardReport& report = manifest.shards[runs[i].shard];
    read_file(step_dir / report.file, report,
              std::vector<CopyRun>(runs.begin() + static_cast<long>(i),
                                   runs.begin() + static_cast<long>(j)),
              stats);
    stats.files++;
    i = j;
  }
  return stats;
}

}  // namespace weft::checkpoint
