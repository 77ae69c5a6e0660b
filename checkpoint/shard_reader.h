#pragma once
// Loading: the copy runs a rank planned (reshard.h) read from the step's shard files with pread,
// each file's runs sorted and grown to whole checksum blocks, each block read once per span and
// verified against the manifest before a byte of it is used. A file of another size than the
// manifest says, or a block that does not match, is an Error(Corrupt) naming the file (and the
// bytes), so the caller can fall back to an older step.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "checkpoint/manifest.h"
#include "checkpoint/reshard.h"

namespace weft::checkpoint {

struct ReadStats {
  uint64_t bytes_read = 0;  // from the files, whole blocks
  int files = 0;
};

ReadStats read_runs(const fs::path& step_dir, const Manifest& manifest, std::vector<CopyRun> runs);

}  // namespace weft::checkpoint
