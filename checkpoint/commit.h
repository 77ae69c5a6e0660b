#pragma once
// Committing a step: once every rank's shard is written and reported, the committer (the job's
// coordinator, or rank 0 where there is none) writes the step's MANIFEST.json, then points
// LATEST at it, each by temporary file + fsync + rename. A step directory without a manifest is
// not a checkpoint (a rank died while writing): loaders never look into it, and the next
// commit's pruning removes it.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "checkpoint/manifest.h"

namespace weft::checkpoint {

// Commits `step` of a job of `world_size` ranks: checks that there is one report per rank and
// that each names a file of the size it reported, writes the manifest, moves LATEST, then keeps
// only the newest `keep` committed steps (0: all) and removes step directories older than
// the committed one that never got a manifest. Error(InvalidArgument) for missing or doubled
// reports, Error(Io) when a file cannot be written.
void commit_step(const fs::path& dir, int64_t step, int world_size, const nlohmann::json& job,
                 std::vector<ShardReport> reports, int keep);

// The step LATEST names, if it names one.
std::optional<int64_t> latest_step(const fs::path& dir);
// Steps whose directory has a manifest, newest first (not verified: read_manifest does that).
std::vector<int64_t> committed_steps(const fs::path& dir);
// Where a resume starts: LATEST's step, then the committed steps older than it, newest first;
// without LATEST, every committed step.
std::vector<int64_t> resume_candidates(const fs::path& dir);

}  // namespace weft::checkpoint
