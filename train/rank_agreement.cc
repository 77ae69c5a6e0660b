#include "train/rank_agreement.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

#include "runtime/checksum.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

// One line per flag, "flag=value", in the caller's order.
std::string serialize(const FlagValues& flags) {
  std::string text;
  for (const auto& [flag, value] : flags) text += flag + "=" + value + "\n";
  return text;
}

FlagValues parse(const std::string& text) {
  FlagValues flags;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string line = text.substr(start, end - start);
    const size_t eq = line.find('=');
    flags.emplace_back(line.substr(0, eq), eq == std::string::npos ? "" : line.substr(eq + 1));
  }
  return flags;
}

// "rank 3", "ranks 0, 2, 5", "ranks 0, 1, 2, ... (12 ranks)".
std::string ranks_text(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size() && i < 4; i++)
    text += (i ? ", " : "") + std::to_string(ranks[i]);
  if (ranks.size() > 4) text += ", ... (" + std::to_string(ranks.size()) + " ranks)";
  return text;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Every rank's `text`, rank by rank, on every rank: lengths first, then the texts padded to the
// longest (for the short texts of a failed check).
std::vector<std::string> gather_text(const std::string& text, const GatherWords& gather) {
  const std::vector<uint64_t> lengths = gather({text.size()});
  const size_t words = (*std::max_element(lengths.begin(), lengths.end()) + 7) / 8;
  std::vector<uint64_t> mine(words, 0);
  std::memcpy(mine.data(), text.data(), text.size());
  const std::vector<uint64_t> all = gather(mine);
  std::vector<std::string> texts;
  for (size_t r = 0; r < lengths.size(); r++)
    texts.emplace_back(reinterpret_cast<const char*>(all.data() + r * words), lengths[r]);
  return texts;
}

}  // namespace

std::string describe_disagreement(const std::vector<FlagValues>& per_rank) {
  // Flags in the order the first rank lists them, then any only others list.
  std::vector<std::string> order;
  for (const FlagValues& flags : per_rank)
    for (const auto& [flag, value] : flags)
      if (std::find(order.begin(), order.end(), flag) == order.end()) order.push_back(flag);
  std::string differing;
  for (const std::string& flag : order) {
    // Ranks by value, values in the order of their first rank.
    std::vector<std::pair<std::string, std::vector<int>>> groups;
    for (size_t r = 0; r < per_rank.size(); r++) {
      std::string value = "(not given)";
      for (const auto& [f, v] : per_rank[r])
        if (f == flag) value = v;
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const auto& g) { return g.first == value; });
      if (it == groups.end()) it = groups.insert(groups.end(), {value, {}});
      it->second.push_back(static_cast<int>(r));
    }
    if (groups.size() < 2) continue;
    std::string values;
    for (const auto& [value, ranks] : groups)
      values += (values.empty() ? "" : "; ") + value + " on " + ranks_text(ranks);
    differing += (differing.empty() ? "" : ", ") + flag + " (" + values + ")";
  }
  return differing;
}

void check_flags_agree(const FlagValues& flags, const GatherWords& gather) {
  const std::string text = serialize(flags);
  const std::vector<uint64_t> hashes = gather({checksum(text.data(), text.size())});
  if (std::all_of(hashes.begin(), hashes.end(), [&](uint64_t h) { return h == hashes[0]; })) return;
  // Some rank differs: every rank gathers every rank's flags to say how.
  std::vector<FlagValues> per_rank;
  for (const std::string& t : gather_text(text, gather)) per_rank.push_back(parse(t));
  throw Error(ErrorCode::InvalidArgument,
              "the ranks were started with different flags, so their replicas would train "
              "different models: " +
                  describe_disagreement(per_rank) +
                  ". Start every rank with the same flags (stopped before step 1)");
}

void stop_together(const std::optional<Error>& error, const GatherWords& gather) {
  // 0: fine; else 1 + the error's code.
  const uint64_t word = error ? 1 + static_cast<uint64_t>(error->code()) : 0;
  const std::vector<uint64_t> words = gather({word});
  const auto first = std::find_if(words.begin(), words.end(), [](uint64_t w) { return w; });
  if (first == words.end()) return;
  // Every rank takes part in the gather, then throws: its own error, or the first failing rank's.
  const size_t rank = first - words.begin();
  const std::string theirs = gather_text(error ? error->message() : "", gather)[rank];
  if (error) throw *error;
  throw Error(static_cast<ErrorCode>(*first - 1),
              "rank " + std::to_string(rank) + " stopped: " + theirs);
}

int agree_on_preemption(int my_signal, const GatherWords& gather) {
  const std::vector<uint64_t> signals = gather({static_cast<uint64_t>(my_signal)});
  const auto first = std::find_if(signals.begin(), signals.end(), [](uint64_t s) { return s; });
  return first == signals.end() ? 0 : static_cast<int>(*first);
}

void check_replicas_agree(uint64_t parameter_checksum, const GatherWords& gather) {
  const std::vector<uint64_t> sums = gather({parameter_checksum});
  std::map<uint64_t, std::vector<int>> ranks_of;
  for (size_t r = 0; r < sums.size(); r++) ranks_of[sums[r]].push_back(static_cast<int>(r));
  if (ranks_of.size() == 1) return;
  std::string groups;
  for (const auto& [sum, ranks] : ranks_of)
    groups += (groups.empty() ? "" : "; ") + hex(sum) + " on " + ranks_text(ranks);
  throw Error(ErrorCode::InvalidArgument,
              "the data-parallel replicas start from different parameters although their flags "
              "agree (checksums " +
                  groups +
                  "): the ranks run different weft-train builds, or math libraries that round "
                  "differently. Run the same binary on every rank (stopped before step 1)");
}

}  // namespace weft::train
