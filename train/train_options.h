#pragma once
// weft-train's command line, parsed and checked before any work starts. Every mistake is an
// Error(InvalidArgument) that names the flag and says what would be accepted.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/gpt_config.h"

namespace weft::train {

struct TrainOptions {
  models::GptConfig model;       // --layers --d-model --heads --seq
  int batch = 8;                 // --batch: global batch, in sequences
  int micro_batch = 0;           // --micro-batch: sequences per forward/backward (0: batch / dp)
  int steps = 50;                // --steps
  double lr = 1e-3;              // --lr: peak learning rate
  int warmup = 10;               // --warmup: steps of linear warm-up
  double weight_decay = 0.1;     // --weight-decay
  double clip = 1.0;             // --clip: global gradient norm (0 disables)
  uint64_t seed = 1337;          // --seed
  std::string data;              // --data FILE (empty: the built-in corpus)
  std::string backend;           // --backend (empty: WEFT_BACKEND, else auto)
  std::string device = "cpu";    // --device cpu|cuda
  std::string precision;         // --precision f32|bf16 (cuda only; default bf16 there, f32 on cpu)
  bool zero1 = false;            // --zero1
  int dp = 0;                    // --dp: data-parallel size (0: what tp x pp leave of the world)
  int tp = 1;                    // --tp: tensor-parallel size
  int pp = 1;                    // --pp: pipeline stages
  std::string schedule = "1f1b"; // --schedule gpipe|1f1b|interleaved|zb
  int virtual_stages = 1;        // --virtual-stages: model chunks per pipeline rank
  double bucket_mb = 25;         // --bucket-mb
  std::string grad_dtype;        // --grad-dtype f32|bf16 (default: f32, the precision on cuda)
  int eval_every = 0;            // --eval-every K (0: never)
  int threads = 0;               // --threads per rank (0: the node's cores / ranks on the node)
  std::string log_json;          // --log-json FILE
  std::string trace;             // --trace FILE: every rank's timeline, one Chrome trace
  std::string plot;              // --plot FILE.svg: loss, eval loss and tokens/s per step
  std::string ckpt_dir;          // --ckpt-dir D (empty: no checkpoints)
  int ckpt_every = 0;            // --ckpt-every K: a checkpoint after every K-th step (0: never)
  int keep = 0;                  // --keep N: committed checkpoints kept (0: all)
  bool resume = false;           // --resume: continue from the newest committed checkpoint
  bool help = false;             // --help

  // Checks what depends on the world size, before any work: dp x tp x pp = world (dp filled
  // in when left at 0), batch divisible by dp x micro-batch, and a layout the model and the
  // schedule can take (heads and vocabulary divisible by tp, layers by pp x virtual stages,
  // enough micro-batches for the schedule); each message says which number to change to what.
  // Fills micro_batch when it was left at 0 (batch / dp, or 1 with pipeline stages).
  void resolve(int world);
  // Micro-batches each data-parallel rank runs per step (Megatron's batch / (dp x micro)).
  int accumulation() const { return batch / (dp * micro_batch); }
  // Whether the model is cut (tensor or pipeline parallelism) rather than replicated.
  bool model_parallel() const { return tp > 1 || pp > 1; }
  // "dp 2 x tp 2 x pp 2, 1f1b, 8 micro-batches": the layout, for the run's first line.
  std::string describe_layout() const;
  // Threads that each run a share of every micro-batch with a one-thread BLAS (see
  // ModelLanes): all of the rank's `threads` (resolved, non-zero) when each gets a sequence;
  // otherwise one lane, and the BLAS gets the threads.
  int lanes() const { return threads > 1 && micro_batch >= threads ? threads : 1; }
  // The flags every rank must be given the same value of, as (flag, value), in a fixed order:
  // those that shape the model, the batches, the optimizer and the collectives each step
  // issues. `data_checksum` (of the corpus's contents, not its path: nodes may keep copies in
  // different places) stands for --data. --threads, --log-json, --plot, --ckpt-dir (a path, which
  // nodes may mount differently) and --backend are each rank's own, and of --trace only whether
  // it is given (the communicator agrees on
  // its backend itself).
  std::vector<std::pair<std::string, std::string>> flags_that_must_agree(
      uint64_t data_checksum) const;
};

// "1 thread/rank", "4 threads/rank in the BLAS", "4 threads/rank as 4 lanes": how a rank's
// `threads` are used, for the run's first line.
std::string describe_threads(int threads, int lanes);

// `args` are the arguments after argv[0].
TrainOptions parse_train_options(const std::vector<std::string>& args);
std::string train_usage();

}  // namespace weft::train
