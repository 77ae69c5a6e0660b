#include "train/train_options.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "comm/backend_registry.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

using Args = std::vector<std::string>;

std::string error_of(const Args& args, int dp = 1) {
  try {
    TrainOptions o = parse_train_options(args);
    o.resolve(dp);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    return e.what();
  }
  return "";
}

TEST(TrainOptions, ParsesEveryFlag) {
  TrainOptions o = parse_train_options(
      {"--layers", "2", "--d-model=64", "--heads", "8", "--seq", "32", "--batch", "16",
       "--micro-batch", "2", "--steps", "7", "--lr", "3e-4", "--warmup", "0", "--weight-decay",
       "0", "--clip", "0.5", "--seed", "9", "--data", "x.txt", "--backend", "tcp", "--device",
       "cpu", "--zero1", "--bucket-mb", "0.5", "--grad-dtype", "bf16", "--eval-every", "3",
       "--threads", "1", "--log-json", "log.json", "--ckpt-dir", "ck", "--ckpt-every", "5",
       "--keep", "2", "--resume"});
  EXPECT_EQ(o.model.layers, 2);
  EXPECT_EQ(o.model.d_model, 64);
  EXPECT_EQ(o.model.heads, 8);
  EXPECT_EQ(o.model.seq, 32);
  EXPECT_EQ(o.batch, 16);
  EXPECT_EQ(o.micro_batch, 2);
  EXPECT_EQ(o.steps, 7);
  EXPECT_DOUBLE_EQ(o.lr, 3e-4);
  EXPECT_EQ(o.warmup, 0);
  EXPECT_DOUBLE_EQ(o.clip, 0.5);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_EQ(o.data, "x.txt");
  EXPECT_EQ(o.backend, "tcp");
  EXPECT_TRUE(o.zero1);
  EXPECT_DOUBLE_EQ(o.bucket_mb, 0.5);
  EXPECT_EQ(o.grad_dtype, "bf16");
  EXPECT_EQ(o.eval_every, 3);
  EXPECT_EQ(o.threads, 1);
  EXPECT_EQ(o.log_json, "log.json");
  EXPECT_EQ(o.ckpt_dir, "ck");
  EXPECT_EQ(o.ckpt_every, 5);
  EXPECT_EQ(o.keep, 2);
  EXPECT_TRUE(o.resume);
  o.resolve(4);
  EXPECT_EQ(o.accumulation(), 2);
}

TEST(TrainOptions, MicroBatchDefaultsToOnePerRank) {
  TrainOptions o = parse_train_options({"--batch", "12"});
  o.resolve(3);
  EXPECT_EQ(o.micro_batch, 4);
  EXPECT_EQ(o.accumulation(), 1);
}

// Layouts that cannot work stop before any work, saying which number to change to what.
TEST(TrainOptions, LayoutsThatCannotWorkSayWhichNumberToChange) {
  auto says = [](const Args& args, int world, const std::string& want) {
    const std::string got = error_of(args, world);
    EXPECT_NE(got.find(want), std::string::npos) << "got: " << got;
  };
  says({"--tp", "3"}, 6, "--heads 4 cannot be split over --tp 3: make --heads a multiple of 3");
  says({"--tp", "2", "--pp", "2", "--dp", "3"}, 8,
       "--dp 3 x --tp 2 x --pp 2 = 12 is not the 8 ranks: set --dp 2");
  says({"--tp", "3"}, 8, "--tp 3 x --pp 1 does not divide the 8 ranks");
  says({"--pp", "3"}, 3, "--layers 4 cannot be cut into --pp 3 x --virtual-stages 1 stages");
  says({"--pp", "2", "--schedule", "interleaved", "--virtual-stages", "4"}, 2,
       "make --layers a multiple of 8");
  says({"--pp", "4", "--batch", "2"}, 4, "needs at least as many micro-batches as stages");
  says({"--virtual-stages", "2"}, 1, "--virtual-stages 2 needs --schedule interleaved");
}

TEST(TrainOptions, HybridLayoutsResolveAsMegatronDoes) {
  TrainOptions o = parse_train_options({"--tp", "2", "--pp", "2", "--batch", "16"});
  o.resolve(8);
  EXPECT_EQ(o.dp, 2);
  EXPECT_EQ(o.micro_batch, 1);     // pipelines default to one sequence per micro-batch
  EXPECT_EQ(o.accumulation(), 8);  // batch / (dp x micro-batch)
  EXPECT_EQ(o.describe_layout(), "dp 2 x tp 2 x pp 2, 1f1b, 8 micro-batches");
}

TEST(TrainOptions, BadFlagsSayWhatIsWrong) {
  EXPECT_NE(error_of({"--heads", "3"}).find("--heads 3 does not divide --d-model 256"),
            std::string::npos);
  EXPECT_NE(error_of({"--batch", "8", "--micro-batch", "3"}, 2)
                .find("--batch 8 is not divisible by data-parallel ranks x micro-batch = 2 x 3"),
            std::string::npos);
  EXPECT_NE(error_of({"--batch", "6"}, 4).find("not divisible by the 4 data-parallel ranks"),
            std::string::npos);
  // The backend registry's own message and list: one list for every flag that names a backend.
  EXPECT_NE(
      error_of({"--backend", "carrier-pigeon"})
          .find("--backend: unknown backend 'carrier-pigeon': use one of " + comm::backend_names()),
      std::string::npos);
  EXPECT_NE(error_of({"--layers", "two"}).find("--layers expects a whole number, got 'two'"),
            std::string::npos);
  EXPECT_NE(error_of({"--steps", "0"}).find("--steps must be at least 1"), std::string::npos);
  EXPECT_NE(error_of({"--lr"}).find("--lr needs a value"), std::string::npos);
  EXPECT_NE(error_of({"--frobnicate"}).find("unknown flag '--frobnicate'"), std::string::npos);
  EXPECT_NE(error_of({"--grad-dtype", "f16"}).find("f32, bf16"), std::string::npos);
  // Checkpoint flags without a directory to write to or read from.
  for (const char* flag : {"--resume", "--ckpt-every=5", "--keep=3"})
    EXPECT_NE(error_of({flag}).find(" needs --ckpt-dir D"), std::string::npos) << flag;
  EXPECT_NE(error_of({"--ckpt-dir", "d", "--ckpt-every", "0"}).find("--ckpt-every must be at least 1"),
            std::string::npos);
}

// --lr nan trained into NaN and exited 0: every real-valued flag must be finite, and say which.
TEST(TrainOptions, RealValuedFlagsMustBeFinite) {
  for (const char* flag : {"--lr", "--weight-decay", "--clip", "--bucket-mb"})
    for (const char* value : {"nan", "inf", "-inf", "infinity"}) {
      std::string m = error_of({flag, value});
      EXPECT_NE(m.find(std::string(flag) + " must be a finite number, got " + value),
                std::string::npos)
          << m;
    }
  EXPECT_NE(error_of({"--lr", "-1e-3"}).find("--lr must not be negative"), std::string::npos);
  EXPECT_NE(error_of({"--bucket-mb", "1e12"}).find("--bucket-mb must be above 0 and at most"),
            std::string::npos);
  EXPECT_DOUBLE_EQ(parse_train_options({"--lr", "1e9"}).lr, 1e9);  // huge but finite: allowed
}

// The model's own checks name the flag once, without "InvalidArgument: " twice.
TEST(TrainOptions, ModelErrorsCarryTheirCodeOnce) {
  std::string m = error_of({"--heads", "3"});
  EXPECT_EQ(m.find("InvalidArgument: InvalidArgument"), std::string::npos) << m;
  EXPECT_NE(m.find("--heads 3"), std::string::npos) << m;
}

// Left unset, --backend defers to WEFT_BACKEND (which weftrun --backend sets), then auto.
TEST(TrainOptions, BackendDefaultsToTheEnvironment) {
  EXPECT_EQ(parse_train_options({}).backend, "");
  EXPECT_EQ(parse_train_options({"--backend", "shm"}).backend, "shm");
}

TEST(TrainOptions, ThreadsAreDescribedInGoodEnglishForEveryCount) {
  EXPECT_EQ(describe_threads(1, 1), "1 thread/rank");
  EXPECT_EQ(describe_threads(2, 1), "2 threads/rank in the BLAS");
  EXPECT_EQ(describe_threads(2, 2), "2 threads/rank as 2 lanes");
  EXPECT_EQ(describe_threads(16, 16), "16 threads/rank as 16 lanes");
}

TEST(TrainOptions, HelpDocumentsTheExitCodesAndEveryBackend) {
  const std::string help = train_usage();
  for (const char* text : {"exit codes: 0  done", "2  bad usage", "1  failure in the job",
                           "128+N  killed by signal N", "$WEFT_BACKEND"})
    EXPECT_NE(help.find(text), std::string::npos) << text;
  // The registry's list, not a copy that drifts from it.
  EXPECT_NE(help.find("--backend NAME   " + comm::backend_names()), std::string::npos) << help;
}

// What the ranks compare before step 1: every flag that shapes the run, in a fixed order, with
// values in one spelling (1e-3 and 0.001 agree); not the flags that are each rank's own.
TEST(TrainOptions, FlagsThatMustAgree) {
  auto a = parse_train_options({"--lr", "1e-3", "--seed", "1", "--threads", "1"});
  auto b = parse_train_options({"--lr", "0.001", "--seed", "1", "--threads", "2", "--backend",
                                "tcp", "--log-json", "x.json"});
  a.resolve(2);
  b.resolve(2);
  EXPECT_EQ(a.flags_that_must_agree(7), b.flags_that_must_agree(7));
  EXPECT_NE(a.flags_that_must_agree(7), a.flags_that_must_agree(8));  // the data's contents
  std::vector<std::string> names;
  for (const auto& [flag, value] : a.flags_that_must_agree(7)) names.push_back(flag);
  for (const char* flag :
       {"--layers", "--d-model", "--heads", "--seq", "--batch", "--micro-batch", "--steps", "--lr",
        "--warmup", "--weight-decay", "--clip", "--seed", "--data", "--device", "--precision",
        "--zero1", "--bucket-mb", "--grad-dtype", "--eval-every"})
    EXPECT_NE(std::find(names.begin(), names.end(), flag), names.end()) << flag;
  for (const char* own : {"--threads", "--backend", "--log-json"})
    EXPECT_EQ(std::find(names.begin(), names.end(), own), names.end()) << own;
  auto c = parse_train_options({"--lr", "5e-3", "--seed", "2"});
  c.resolve(2);
  EXPECT_NE(a.flags_that_must_agree(7), c.flags_that_must_agree(7));
}

// The GPU trains in bf16 unless told otherwise, and its gradients go on the wire in the
// model's dtype; the CPU trains in f32 only.
TEST(TrainOptions, PrecisionAndGradientDtypeFollowTheDevice) {
  TrainOptions cpu = parse_train_options({});
  EXPECT_EQ(cpu.precision, "f32");
  EXPECT_EQ(cpu.grad_dtype, "f32");
  TrainOptions gpu = parse_train_options({"--device", "cuda"});
  EXPECT_EQ(gpu.precision, "bf16");
  EXPECT_EQ(gpu.grad_dtype, "bf16");
  TrainOptions gpu_f32 = parse_train_options({"--device", "cuda", "--precision=f32"});
  EXPECT_EQ(gpu_f32.grad_dtype, "f32");
  EXPECT_NE(error_of({"--precision", "bf16"}).find("needs --device cuda"), std::string::npos);
  EXPECT_NE(error_of({"--device", "cuda", "--grad-dtype", "f32"}).find("set --precision f32"),
            std::string::npos);
  EXPECT_NE(error_of({"--precision", "f16"}).find("--precision"), std::string::npos);
}

}  // namespace
}  // namespace weft::train
