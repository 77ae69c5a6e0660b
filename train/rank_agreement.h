#pragma once
// One job, one configuration: before step 1 the ranks check that they were given the same flags
// and that their replicas start from the same parameters. Ranks started with different flags (a
// script building each rank's command line, a copy-paste slip) would otherwise train silently
// diverging replicas, or stall in mismatched collectives. Every rank takes part and every rank
// throws the same InvalidArgument, naming each differing flag with every rank's value.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/error.h"

namespace weft::train {

using FlagValues = std::vector<std::pair<std::string, std::string>>;
// Every rank's `mine` (the same number of words on each), rank by rank: an allgather over the
// job's communicator.
using GatherWords = std::function<std::vector<uint64_t>(const std::vector<uint64_t>& mine)>;

// Compares a hash of `flags` across the ranks; when one differs, gathers every rank's flags and
// throws, on every rank, what describe_disagreement() says.
void check_flags_agree(const FlagValues& flags, const GatherWords& gather);
// Stops every rank together when some rank met an error in set-up (`error`; e.g. rank 0's
// --log-json cannot be opened) instead of leaving its peers waiting for it: the failing ranks
// throw theirs, the others the first failing rank's message and code.
void stop_together(const std::optional<Error>& error, const GatherWords& gather);
// Preemption (runtime/preemption.h): a signal reaches the ranks at different moments, so at a
// step's end they gather what each got (`my_signal`, 0: nothing) and all take the first rank's
// signal that is not 0: every rank stops after the same step, or none does.
int agree_on_preemption(int my_signal, const GatherWords& gather);
// Compares each replica's checksum of its initial parameters (flags that agree give the same
// weights on every machine: models/gpt_config.h); throws naming the ranks when they differ.
void check_replicas_agree(uint64_t parameter_checksum, const GatherWords& gather);

// The flags whose values differ between ranks (`per_rank[r]` is rank r's), each with the value of
// every rank, grouped by value: "--seed (1 on rank 0; 2 on rank 1)". Empty when all agree.
std::string describe_disagreement(const std::vector<FlagValues>& per_rank);

}  // namespace weft::train
