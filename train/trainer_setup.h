#pragma once
// What the CPU and GPU trainers both derive from the options and the model layout, and the
// pieces of a step's bookkeeping they share.
#include <vector>

#include "comm/communicator.h"
#include "train/corpus.h"
#include "train/step_log.h"
#include "train/train_options.h"
#include "models/gpt_layout.h"
#include "parallel/adamw_segments.h"
#include "parallel/data_parallel.h"
#include "runtime/clock.h"

namespace weft::train {

// Every rank's `mine` (the same number of words on each), rank by rank, over `comm` in host
// memory (a host trainer's TrainingRun::allgather_words).
std::vector<uint64_t> allgather_host_words(comm::Communicator& comm,
                                           const std::vector<uint64_t>& mine);
// Bucket size, ZeRO-1 and wire dtype from the flags; dtype and device are the caller's.
parallel::DataParallelOptions data_parallel_options(const TrainOptions& o);
// Which tensors AdamW decays.
std::vector<parallel::DecaySpan> decay_spans(const models::GptLayout& layout);
parallel::AdamWOptions adamw_options(const TrainOptions& o);
// The tokens of micro-batch `m` of step `step` (from 1) on `rank` of `ranks`: its slice of the
// step's global batch.
void load_micro_batch(const Corpus& corpus, const TrainOptions& o, int rank, int ranks, int step,
                      int m, int32_t* inputs, int32_t* targets);
// The step's communication figures from what DataParallel::finish() measured.
void record_comm(StepStats& s, const parallel::CommStats& comm);
// What the gradients are multiplied by for clipping: below 1 only when the norm exceeds --clip.
float clip_factor(const TrainOptions& o, double grad_norm);
// The step's time and rates, for a step that began at `start` (ms_step, tokens/s, GFLOP/s).
void record_rates(StepStats& s, const TrainOptions& o, Clock::time_point start);
// What a rank's backward scales the summed per-token losses by: 1 / the tokens of its share of
// the step, so that it adds up the gradient of their mean (the data-parallel average then makes
// it the mean over the global batch).
float loss_scale(const TrainOptions& o);

}  // namespace weft::train
