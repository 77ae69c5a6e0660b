#include "train/train_options.h"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <limits>

#include "comm/backend_registry.h"
#include "parallel/schedule.h"
#include "runtime/command_line.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

constexpr int kMaxBucketMb = 1 << 20;
constexpr int kMaxInt = std::numeric_limits<int>::max();

[[noreturn]] void bad(const std::string& what) {
  throw Error(ErrorCode::InvalidArgument, what + " (weft-train --help lists the flags)");
}

}  // namespace

TrainOptions parse_train_options(const std::vector<std::string>& args) {
  TrainOptions o;
  if (cli::asks_for_help(args)) {
    o.help = true;
    return o;
  }
  CLI::App app("", "weft-train");
  const CLI::Validator positive = cli::whole_number(1, kMaxInt);
  const CLI::Validator non_negative = cli::whole_number(0, kMaxInt);
  const CLI::Validator real = cli::finite_number(0);
  app.add_option("--layers", o.model.layers)->transform(positive);
  app.add_option("--d-model", o.model.d_model)->transform(positive);
  app.add_option("--heads", o.model.heads)->transform(positive);
  app.add_option("--seq", o.model.seq)->transform(positive);
  app.add_option("--batch", o.batch)->transform(positive);
  app.add_option("--micro-batch", o.micro_batch)->transform(positive);
  app.add_option("--steps", o.steps)->transform(positive);
  app.add_option("--lr", o.lr)->check(real);
  app.add_option("--warmup", o.warmup)->transform(non_negative);
  app.add_option("--weight-decay", o.weight_decay)->check(real);
  app.add_option("--clip", o.clip)->check(real);
  app.add_option("--seed", o.seed)->transform(cli::whole_number(0, UINT64_MAX));
  app.add_option("--data", o.data);
  app.add_option("--backend", o.backend)->check([](const std::string& name) {
    comm::find_backend(name);  // throws, naming the registry's list
    return std::string();
  });
  app.add_option("--device", o.device)->check(cli::one_of({"cpu", "cuda"}));
  app.add_option("--precision", o.precision)->check(cli::one_of({"f32", "bf16"}));
  app.add_flag("--zero1", o.zero1);
  app.add_option("--bucket-mb", o.bucket_mb)->check(real);
  app.add_option("--grad-dtype", o.grad_dtype)->check(cli::one_of({"f32", "bf16"}));
  app.add_option("--eval-every", o.eval_every)->transform(non_negative);
  app.add_option("--threads", o.threads)->transform(positive);
  app.add_option("--dp", o.dp)->transform(positive);
  app.add_option("--tp", o.tp)->transform(positive);
  app.add_option("--pp", o.pp)->transform(positive);
  app.add_option("--schedule", o.schedule)
      ->check(cli::one_of({"gpipe", "1f1b", "interleaved", "zb"}));
  app.add_option("--virtual-stages", o.virtual_stages)->transform(positive);
  app.add_option("--log-json", o.log_json);
  app.add_option("--trace", o.trace);
  app.add_option("--plot", o.plot);
  app.add_option("--ckpt-dir", o.ckpt_dir);
  app.add_option("--ckpt-every", o.ckpt_every)->transform(positive);
  app.add_option("--keep", o.keep)->transform(positive);
  app.add_flag("--resume", o.resume);
  cli::parse(app, args, " (weft-train --help lists the flags)");

  if (o.bucket_mb <= 0 || o.bucket_mb > kMaxBucketMb)
    bad("--bucket-mb must be above 0 and at most " + std::to_string(kMaxBucketMb) + " (1 TiB)");
  if (o.precision.empty()) o.precision = o.device == "cuda" ? "bf16" : "f32";
  if (o.device == "cpu" && o.precision != "f32")
    bad("--precision " + o.precision + " needs --device cuda: the CPU model trains in f32");
  // On a GPU the gradients go on the wire in the model's own dtype.
  if (o.grad_dtype.empty()) o.grad_dtype = o.device == "cuda" ? o.precision : "f32";
  if (o.device == "cuda" && o.grad_dtype != o.precision)
    bad("--grad-dtype " + o.grad_dtype + " with --device cuda --precision " + o.precision +
        ": a GPU's gradients go on the wire in the model's own dtype; set --precision " +
        o.grad_dtype + " instead");
  if (o.ckpt_dir.empty() && (o.ckpt_every > 0 || o.resume || o.keep > 0))
    bad(std::string(o.resume ? "--resume" : o.ckpt_every > 0 ? "--ckpt-every" : "--keep") +
        " needs --ckpt-dir D: the directory checkpoints are written to and resumed from");
  o.model.validate();  // its messages name the flags
  return o;
}

std::vector<std::pair<std::string, std::string>> TrainOptions::flags_that_must_agree(
    uint64_t data_checksum) const {
  // Shortest text that reads back as the same double: 1e-3 and 0.001 are one value.
  auto real = [](double v) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, end);
  };
  char data[32];
  std::snprintf(data, sizeof data, "contents %016llx",
                static_cast<unsigned long long>(data_checksum));
  return {{"--layers", std::to_string(model.layers)},
          {"--d-model", std::to_string(model.d_model)},
          {"--heads", std::to_string(model.heads)},
          {"--seq", std::to_string(model.seq)},
          {"--batch", std::to_string(batch)},
          {"--micro-batch", std::to_string(micro_batch)},
          {"--steps", std::to_string(steps)},
          {"--lr", real(lr)},
          {"--warmup", std::to_string(warmup)},
          {"--weight-decay", real(weight_decay)},
          {"--clip", real(clip)},
          {"--seed", std::to_string(seed)},
          {"--data", data},
          {"--device", device},
          {"--precision", precision},
          {"--zero1", zero1 ? "on" : "off"},
          {"--bucket-mb", real(bucket_mb)},
          {"--grad-dtype", grad_dtype},
          {"--eval-every", std::to_string(eval_every)},
          {"--dp", std::to_string(dp)},
          {"--tp", std::to_string(tp)},
          {"--pp", std::to_string(pp)},
          {"--schedule", schedule},
          {"--virtual-stages", std::to_string(virtual_stages)},
          {"--ckpt-every", std::to_string(ckpt_every)},
          {"--keep", std::to_string(keep)},
          {"--resume", resume ? "on" : "off"},
          {"--trace", trace.empty() ? "off" : "on"}};  // every rank takes part in gathering it
}

std::string describe_threads(int threads, int lanes) {
  if (threads == 1) return "1 thread/rank";
  std::string t = std::to_string(threads) + " threads/rank";
  return lanes > 1 ? t + " as " + std::to_string(lanes) + " lanes" : t + " in the BLAS";
}

void TrainOptions::resolve(int world) {
  const std::string ranks = std::to_string(world) + " ranks";
  if (dp == 0) {
    if (world % (tp * pp) != 0)
      bad("--tp " + std::to_string(tp) + " x --pp " + std::to_string(pp) +
          " does not divide the " + ranks + ": launch a multiple of " + std::to_string(tp * pp) +
          " ranks, or change --tp/--pp");
    dp = world / (tp * pp);
  }
  if (dp * tp * pp != world)
    bad("--dp " + std::to_string(dp) + " x --tp " + std::to_string(tp) + " x --pp " +
        std::to_string(pp) + " = " + std::to_string(dp * tp * pp) + " is not the " + ranks +
        ": set --dp " + (world % (tp * pp) == 0 ? std::to_string(world / (tp * pp)) : "to fit") +
        " or leave it out");
  if (model.heads % tp != 0)
    bad("--heads " + std::to_string(model.heads) + " cannot be split over --tp " +
        std::to_string(tp) + ": make --heads a multiple of " + std::to_string(tp));
  if (model.padded_vocab % tp != 0)
    bad("the vocabulary (" + std::to_string(model.padded_vocab) +
        " byte tokens) cannot be split over --tp " + std::to_string(tp) +
        ": use a --tp that divides it");
  if (schedule == "interleaved" && pp < 2)
    bad("--schedule interleaved needs --pp 2 or more: it interleaves model chunks across "
        "pipeline ranks");
  if (schedule != "interleaved" && virtual_stages != 1)
    bad("--virtual-stages " + std::to_string(virtual_stages) + " needs --schedule interleaved");
  if (model.layers % (pp * virtual_stages) != 0)
    bad("--layers " + std::to_string(model.layers) + " cannot be cut into --pp " +
        std::to_string(pp) + " x --virtual-stages " + std::to_string(virtual_stages) +
        " stages of equal size: make --layers a multiple of " +
        std::to_string(pp * virtual_stages));
  if (micro_batch == 0) {
    if (batch % dp != 0)
      bad("--batch " + std::to_string(batch) + " is not divisible by the " + std::to_string(dp) +
          " data-parallel ranks: pick a multiple of " + std::to_string(dp));
    micro_batch = pp > 1 ? 1 : batch / dp;
  }
  if (batch % (dp * micro_batch) != 0)
    bad("--batch " + std::to_string(batch) + " is not divisible by data-parallel ranks x " +
        "micro-batch = " + std::to_string(dp) + " x " + std::to_string(micro_batch) +
        ": each rank must run a whole number of micro-batches per step");
  if (pp > 1 || virtual_stages > 1)
    parallel::check_schedule_layout(pp, accumulation(), parallel::parse_schedule_kind(schedule),
                                    virtual_stages);
}

std::string TrainOptions::describe_layout() const {
  std::string s = "dp " + std::to_string(dp) + " x tp " + std::to_string(tp) + " x pp " +
                  std::to_string(pp);
  if (pp > 1) {
    s += ", " + schedule;
    if (virtual_stages > 1) s += " (" + std::to_string(virtual_stages) + " virtual stages)";
  }
  const int m = accumulation();
  return s + ", " + std::to_string(m) + (m == 1 ? " micro-batch" : " micro-batches");
}

std::string train_usage() {
  return R"(usage: weft-train [flags]     (launch ranks with: weftrun -n N -- weft-train ...)

Trains a GPT-2-style byte-level language model with data, tensor and pipeline parallelism.

model:     --layers N (4)  --d-model N (256)  --heads N (4)  --seq N (128)
batch:     --batch N        global batch in sequences (8)
           --micro-batch N  sequences per forward/backward (batch / dp; 1 with --pp); each
                            rank runs batch / (dp x micro-batch) micro-batches per step
training:  --steps N (50)  --lr X (1e-3)  --warmup N (10)  --weight-decay X (0.1)
           --clip X (1.0, 0 disables)  --seed N (1337)
data:      --data FILE      UTF-8 text, byte-level tokens (default: a built-in corpus)
           --eval-every K   held-out loss and perplexity every K steps (0: never)
parallel:  --backend NAME   )" +
         comm::backend_names() + R"(
                            (default: $WEFT_BACKEND, which weftrun --backend sets, else auto;
                            GPU tensors take nccl as they are, the others copy them through
                            pinned host memory)
           --dp N --tp N --pp N   data-, tensor- and pipeline-parallel sizes, dp x tp x pp =
                            ranks (--dp defaults to what --tp x --pp leave; tp ranks are
                            neighbours); micro-batches per step = batch / (dp x micro-batch)
           --schedule gpipe|1f1b|interleaved|zb   pipeline schedule (1f1b)
           --virtual-stages N   model chunks per pipeline rank (interleaved only)
           --zero1          shard the optimizer state across data-parallel ranks (ZeRO-1)
           --bucket-mb X    gradient bucket size (25)
           --grad-dtype f32|bf16   gradient wire format (bf16 when training in bf16)
device:    --device cpu|cuda   --precision f32|bf16   cuda trains in bf16 (f32 master weights)
                               by default; rank r uses GPU (local rank mod GPUs)
           --threads N      threads per rank, as lanes splitting each micro-batch when it has a
                            sequence for each, else as BLAS threads (the node's cores / ranks on the
                            node)
output:    --log-json FILE  one JSON object per step, appended, from rank 0
           --trace FILE     every rank's timeline (forward, backward, bucket reductions, pipeline
                            sends and receives, optimizer, checkpoint writes) gathered by rank 0
                            into one Chrome trace: open it in ui.perfetto.dev
           --plot FILE.svg  loss, eval loss and tokens/s against the step, drawn by rank 0
ckpt:      --ckpt-dir D     where checkpoints go: D/step-00000100/rank-00003.safetensors per
                            rank, D/step-.../MANIFEST.json once every rank's shard is in, D/LATEST
           --ckpt-every K   a checkpoint after every K-th step, written by a background thread
                            while training goes on (its time and hidden share are printed)
           --keep N         keep the newest N committed checkpoints (all)
           --resume         continue from D/LATEST (falling back to older steps when a file is
                            torn), under any launcher and any dp x tp x pp layout that fits the
                            model; the model's flags must be the checkpoint's. Implied when
                            weftrun --elastic restarted the job (WEFT_RESTART_COUNT above 0)
           With --ckpt-dir, SIGTERM or SIGUSR1 (a scheduler's preemption notice, e.g. Slurm's
           --signal=B:USR1@120) stops every rank after the same step, the one the first rank to
           hear of it finished (they agree at each step's end), with a checkpoint of that step
           committed; weft-train then exits 75

Every rank must be given the same flags (--threads, --log-json, --plot, --ckpt-dir, --backend and
--trace's path aside): the ranks compare them, and their initial parameters, before step 1. A
non-finite loss or gradient norm stops the run at that step.

exit codes: 0  done
            2  bad usage: a flag (or flags that differ between ranks), a --log-json that cannot
               be opened, more memory than the machine has for these flags
            1  failure in the job: a lost peer, a diverged run (non-finite loss or gradient norm)
            75  preempted: stopped on SIGTERM/SIGUSR1 with a committed checkpoint (--ckpt-dir)
            128+N  killed by signal N
)";
}

}  // namespace weft::train
