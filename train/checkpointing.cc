#include "train/checkpointing.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

#include "checkpoint/commit.h"
#include "checkpoint/reshard.h"
#include "checkpoint/shard_reader.h"
#include "runtime/clock.h"
#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

namespace ck = weft::checkpoint;
using nlohmann::json;

// The flags that define the model: a checkpoint loads only into the same model.
constexpr const char* kModelFlags[] = {"--layers", "--d-model", "--heads", "--seq"};
// Flags a resumed run may change without changing what it computes (beyond float rounding):
// the layout and device (a checkpoint reshards), when to evaluate or checkpoint, and tracing.
constexpr const char* kFreeFlags[] = {
    "--dp",          "--tp",    "--pp",         "--schedule", "--virtual-stages",
    "--micro-batch", "--zero1", "--bucket-mb",  "--device",   "--resume",
    "--ckpt-every",  "--keep",  "--eval-every", "--trace"};

bool one_of(const std::string& flag, const auto& list) {
  return std::find(std::begin(list), std::end(list), flag) != std::end(list);
}

// The box a rank holds of tensor `t`: its tensor-parallel slice, or the whole.
std::vector<ck::Interval> box_of(const models::ParamTensor& t) {
  std::vector<ck::Interval> box;
  for (size_t d = 0; d < t.global_shape.size(); d++)
    box.push_back(static_cast<int>(d) == t.split_dim ? ck::Interval{t.split_start, t.split_length}
                                                     : ck::Interval{0, t.global_shape[d]});
  return box;
}

// Elements [begin, end) of tensor t's box, as a piece of `kind`.
ck::Piece piece_of(const models::ParamTensor& t, ck::PieceKind kind, size_t begin, size_t end) {
  ck::Piece p;
  p.tensor = t.name;
  p.kind = kind;
  p.global_shape = t.global_shape;
  p.box = box_of(t);
  p.begin = begin;
  p.end = end;
  return p;
}

// Calls f(tensor, segment, first, last): the part [first, last) of the flat buffer where a
// tensor and a segment of the moments overlap.
template <typename F>
void for_each_moment_part(const CheckpointLayout& l, F&& f) {
  for (const parallel::AdamWSegment& s : l.segments)
    for (size_t i = 0; i < l.tensors.size(); i++) {
      const models::ParamTensor& t = l.tensors[i];
      const size_t first = std::max(s.offset, t.offset);
      const size_t last = std::min(s.offset + s.count, t.offset + t.count);
      if (first < last) f(i, s, first, last);
    }
}

double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// `text` as words (an allgather moves words), and back.
std::vector<uint64_t> to_words(const std::string& text, size_t words) {
  std::vector<uint64_t> out(words, 0);
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

}  // namespace

struct Checkpointing::Pending {
  int step = 0;
  double snapshot_ms = 0;
  double background_ms = 0;  // writing, and with a coordinator waiting for the commit
  uint64_t bytes = 0;
  std::string report;  // this rank's, as JSON
  std::optional<Error> failure;  // set: the step is not committed
};

Checkpointing::Checkpointing(const TrainOptions& options, TrainingRun& run,
                             comm::Communicator& world, uint64_t data_checksum)
    : options_(options), run_(run), world_(world), committer_(world.checkpoint_committer()) {
  if (!enabled()) return;
  dir_ = std::filesystem::absolute(options.ckpt_dir);
  // The manifest's description of the job: what defines the model, how it was trained, the
  // layout it was saved under, and every tensor's global shape.
  json model, training;
  for (const auto& [flag, value] : options.flags_that_must_agree(data_checksum)) {
    if (one_of(flag, kModelFlags))
      model[flag] = value;
    else if (!one_of(flag, kFreeFlags))
      training[flag] = value;
  }
  json tensors;
  const models::GptLayout whole(options.model);
  for (const models::ParamTensor& t : whole.tensors()) tensors[t.name] = t.global_shape;
  job_ = {{"layout",
           {{"world_size", world.size()},
            {"dp", options.dp},
            {"tp", options.tp},
            {"pp", options.pp},
            {"virtual_stages", options.virtual_stages},
            {"zero1", options.zero1}}},
          {"model", model},
          {"training", training},
          {"tensors", tensors}};

  layout_ = run.checkpoint_layout();
  params_.resize(layout_.elements);
  m_.resize(parallel::state_elements(layout_.segments));
  v_.resize(m_.size());
  const auto& ts = layout_.tensors;
  if (layout_.writes_params)
    for (size_t i = 0; i < ts.size(); i++)
      if (layout_.writes[i])
        pieces_.push_back(
            {piece_of(ts[i], ck::PieceKind::param, 0, ts[i].count), params_.data() + ts[i].offset});
  if (layout_.writes_moments)
    for (auto [kind, state] : {std::pair{ck::PieceKind::adam_m, &m_}, {ck::PieceKind::adam_v, &v_}})
      for_each_moment_part(
          layout_, [&](size_t i, const parallel::AdamWSegment& s, size_t first, size_t last) {
            if (!layout_.writes[i]) return;
            pieces_.push_back({piece_of(ts[i], kind, first - ts[i].offset, last - ts[i].offset),
                               state->data() + s.state + (first - s.offset)});
          });
}

Checkpointing::~Checkpointing() {
  if (writer_.joinable()) writer_.join();
}

json Checkpointing::job_for(int step) const {
  json job = job_;
  // Batches are a function of the step (train/corpus.h), so the step is the data position;
  // weft-train draws no random numbers after initialisation, so there is no RNG state.
  job["data_position"] = {{"next_step", step + 1},
                          {"sequences_consumed", static_cast<int64_t>(step) * options_.batch}};
  job["adamw_step"] = step;
  job["rng"] = nullptr;
  return job;
}

void Checkpointing::after_step(int step) {
  if (enabled() && options_.ckpt_every > 0 && step % options_.ckpt_every == 0) save(step, false);
}

void Checkpointing::save(int step, bool wait_for_commit) {
  if (!enabled()) return;
  if (pending_ && pending_->step == step) {
    if (wait_for_commit) settle(true);
    return;
  }
  settle(false);
  auto p = std::make_unique<Pending>();
  p->step = step;
  const Clock::time_point start = Clock::now();
  run_.state_to_host(params_.data(), m_.data(), v_.data());
  p->snapshot_ms = ms_since(start);
  if (trace_)
    trace_->record(TraceRow::compute, "checkpoint snapshot", start, Clock::now(), {{"step", step}});
  pending_ = std::move(p);
  writer_ = std::thread([this, p = pending_.get()] { write(*p); });
  if (wait_for_commit) settle(true);
}

void Checkpointing::finish() { settle(false); }

void Checkpointing::write(Pending& p) {
  const Clock::time_point start = Clock::now();
  const int rank = world_.rank();
  try {
    // A step saved again (after a resume from an older one): its old manifest must not outlive
    // the files it describes. Every rank removes it before writing; the commit comes after all.
    const std::filesystem::path step_dir = dir_ / ck::step_dir_name(p.step);
    std::error_code ignored;
    std::filesystem::remove(step_dir / ck::kManifestFile, ignored);
    ck::ShardReport r = ck::write_shard(step_dir, rank, p.step, pieces_);
    p.bytes = r.bytes;
    p.report = to_json(r).dump();
  } catch (const Error& e) {
    p.failure = e;
  } catch (const std::exception& e) {
    p.failure = Error(ErrorCode::Io, e.what());
  }
  if (p.failure)
    p.report = json{{"error", "rank " + std::to_string(rank) +
                                  " could not write its shard: " + p.failure->message()}}
                   .dump();
  if (committer_) {
    try {
      committer_->commit_shard(dir_.string(), p.step, options_.keep,
                               rank == 0 ? job_for(p.step).dump() : "", p.report,
                               deadline_after(env::timeout()));
    } catch (const Error& e) {
      if (!p.failure) p.failure = e;
    }
  }
  p.background_ms = ms_since(start);
  if (trace_)
    trace_->record(TraceRow::checkpoint, "checkpoint write", start, Clock::now(),
                   {{"step", p.step}, {"bytes", static_cast<int64_t>(p.bytes)}});
}

// Ranks without a coordinator: rank 0 gathers every report over the communicator and commits.
void Checkpointing::commit_among_ranks(Pending& p) {
  const int world = world_.size();
  // Each report's length first (0: the rank could not write), then the reports, padded alike.
  const std::vector<uint64_t> sizes = run_.allgather_words({p.failure ? 0 : p.report.size()});
  const size_t words = std::max<size_t>(1, (*std::max_element(sizes.begin(), sizes.end()) + 7) / 8);
  const std::vector<uint64_t> all = run_.allgather_words(to_words(p.report, words));
  std::string why;
  if (world_.rank() == 0) {
    try {
      std::vector<ck::ShardReport> reports;
      for (size_t r = 0; r < static_cast<size_t>(world); r++) {
        const std::string who = "rank " + std::to_string(r);
        if (sizes[r] == 0)
          throw Error(ErrorCode::Io, who + " could not write its shard (its output says why)");
        const char* text = reinterpret_cast<const char*>(all.data() + r * words);
        reports.push_back(ck::shard_report_from_json(json::parse(std::string(text, sizes[r])),
                                                     who + "'s report"));
      }
      ck::commit_step(dir_, p.step, world, job_for(p.step), std::move(reports), options_.keep);
    } catch (const Error& e) {
      why = e.message();
    }
  }
  // Rank 0 tells every rank whether the step is committed.
  const bool committed = run_.allgather_words({why.empty() ? 1u : 0u})[0] == 1;
  if (!committed && !p.failure)
    p.failure =
        Error(ErrorCode::Io,
              world_.rank() == 0 ? why : "rank 0 could not commit it (its output says why)");
}

void Checkpointing::settle(bool must_commit) {
  if (!pending_) return;
  const Clock::time_point start = Clock::now();
  if (writer_.joinable()) writer_.join();
  Pending& p = *pending_;
  if (!committer_) commit_among_ranks(p);
  if (trace_)
    trace_->record(TraceRow::compute, "wait for checkpoint", start, Clock::now(),
                   {{"step", p.step}});
  const double exposed_ms = ms_since(start) + p.snapshot_ms;
  const std::string name = (dir_ / ck::step_dir_name(p.step)).string();
  std::unique_ptr<Pending> done = std::move(pending_);
  if (p.failure) {
    // A lost rank ends the job; any other failure leaves the previous checkpoint as LATEST.
    if (must_commit || p.failure->code() == ErrorCode::PeerLost ||
        p.failure->code() == ErrorCode::Aborted)
      throw Error(p.failure->code(),
                  "checkpoint " + name + " was not committed: " + p.failure->message());
    std::fprintf(stderr, "weft-train: checkpoint %s was not committed: %s; training goes on\n",
                 name.c_str(), p.failure->message().c_str());
    return;
  }
  if (world_.rank() == 0) {
    const double total_ms = p.snapshot_ms + std::max(p.background_ms, ms_since(start));
    std::printf(
        "checkpoint %s committed: %.2f MiB from rank 0, written in %.1f ms, %.0f%% of it "
        "hidden behind training (snapshot %.1f ms, %.1f ms waited)\n",
        name.c_str(), mib(p.bytes), p.background_ms,
        total_ms > 0 ? 100.0 * std::max(0.0, 1.0 - exposed_ms / total_ms) : 100.0, p.snapshot_ms,
        exposed_ms - p.snapshot_ms);
    std::fflush(stdout);
  }
}

void Checkpointing::check_model_flags(const ck::Manifest& m) const {
  const std::string where = (dir_ / ck::step_dir_name(m.step) / ck::kManifestFile).string();
  const json& saved = m.job.value("model", json::object());
  for (const auto& [flag, value] : job_["model"].items())
    if (saved.value(flag, "") != value.get<std::string>())
      throw Error(ErrorCode::InvalidArgument,
                  where + " holds a model saved with " + flag + " " + saved.value(flag, "(none)") +
                      ", this run has " + flag + " " + value.get<std::string>() +
                      ": resume with the checkpoint's model flags, or give another --ckpt-dir");
  if (world_.rank() != 0) return;
  const json& trained = m.job.value("training", json::object());
  for (const auto& [flag, value] : job_["training"].items())
    if (trained.contains(flag) && trained[flag] != value)
      std::fprintf(stderr,
                   "weft-train: note: the checkpoint was trained with %s %s, this run has "
                   "%s (the losses will differ from the saving run's)\n",
                   flag.c_str(), trained[flag].get<std::string>().c_str(),
                   value.get<std::string>().c_str());
}

// A shard of a committed step that is not there at all was never torn (every shard is written
// before its step commits): this rank cannot see what the others wrote, as when --ckpt-dir is not
// one file system that every node shares. Falling back would miss the older steps' shards the same
// way, down to step 1, and lose the job's progress: the job fails instead (Unavailable, exit 1),
// naming it. Only the files this rank reads are looked at (`runs`), not every rank's.
void Checkpointing::check_shards_are_there(const ck::Manifest& m,
                                           const std::vector<ck::CopyRun>& runs) const {
  const std::filesystem::path step_dir = dir_ / ck::step_dir_name(m.step);
  std::vector<bool> checked(m.shards.size(), false);
  for (const ck::CopyRun& run : runs) {
    if (checked[run.shard]) continue;
    checked[run.shard] = true;
    const ck::ShardReport& shard = m.shards[run.shard];
    if (const std::filesystem::path file = step_dir / shard.file; !std::filesystem::exists(file))
      throw Error(ErrorCode::Unavailable,
                  "rank " + std::to_string(world_.rank()) + " cannot find " + file.string() +
                      ", rank " + std::to_string(shard.rank) + "'s shard of committed step " +
                      std::to_string(m.step) +
                      ": across machines --ckpt-dir must be one file system every node shares "
                      "(NFS, Lustre, ...), mounted at the same path; older steps would miss "
                      "their shards the same way, so weft-train does not fall back to them");
  }
}

bool Checkpointing::load(int step) {
  std::string failure;
  std::optional<Error> missing;
  try {
    const ck::Manifest m = ck::read_manifest(dir_, step);
    check_model_flags(m);
    std::fill(params_.begin(), params_.end(), 0.0f);
    std::fill(m_.begin(), m_.end(), 0.0f);
    std::fill(v_.begin(), v_.end(), 0.0f);
    const ck::PieceIndex index(m.shards);
    std::vector<ck::CopyRun> runs;
    auto need = [&](const models::ParamTensor& t, ck::PieceKind kind, size_t begin, size_t end,
                    float* dst) {
      std::vector<ck::CopyRun> r =
          index.plan({t.name, kind, t.global_shape, box_of(t), begin, end, dst});
      runs.insert(runs.end(), r.begin(), r.end());
    };
    for (const models::ParamTensor& t : layout_.tensors)
      need(t, ck::PieceKind::param, 0, t.count, params_.data() + t.offset);
    for_each_moment_part(
        layout_, [&](size_t i, const parallel::AdamWSegment& s, size_t first, size_t last) {
          const models::ParamTensor& t = layout_.tensors[i];
          const size_t at = s.state + (first - s.offset);
          need(t, ck::PieceKind::adam_m, first - t.offset, last - t.offset, m_.data() + at);
          need(t, ck::PieceKind::adam_v, first - t.offset, last - t.offset, v_.data() + at);
        });
    check_shards_are_there(m, runs);
    ck::read_runs(dir_ / ck::step_dir_name(step), m, std::move(runs));
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Unavailable) {
      missing = e;
    } else {
      if (e.code() != ErrorCode::Corrupt && e.code() != ErrorCode::Io) throw;
      failure = e.message();
      std::fprintf(stderr, "weft-train: rank %d: checkpoint step %d cannot be loaded: %s\n",
                   world_.rank(), step, failure.c_str());
    }
  }
  // Every rank must continue from the same step, or stop together when a shard is missing on one
  // of them (rather than leave the others waiting in the next collective).
  constexpr uint64_t kLoaded = 1, kTorn = 0, kMissing = 2;
  const std::vector<uint64_t> states =
      run_.allgather_words({missing ? kMissing : failure.empty() ? kLoaded : kTorn});
  if (missing) throw *missing;
  for (size_t r = 0; r < states.size(); r++)
    if (states[r] == kMissing)
      throw Error(ErrorCode::Unavailable, "rank " + std::to_string(r) +
                                              " cannot find a shard of committed step " +
                                              std::to_string(step) +
                                              " (its message names the file): across machines "
                                              "--ckpt-dir must be one file system every node "
                                              "shares");
  return std::all_of(states.begin(), states.end(), [](uint64_t w) { return w == kLoaded; });
}

int Checkpointing::resume() {
  if (!enabled() || !options_.resume) return 0;
  const std::vector<int64_t> steps = ck::resume_candidates(dir_);
  const bool leader = world_.rank() == 0;
  for (size_t i = 0; i < steps.size(); i++) {
    const int step = static_cast<int>(steps[i]);
    if (load(step)) {
      run_.state_from_host(params_.data(), m_.data(), v_.data());
      if (leader) {
        std::printf("weft-train: resumed from %s: continuing after step %d\n",
                    (dir_ / ck::step_dir_name(step)).c_str(), step);
        std::fflush(stdout);
      }
      return step;
    }
    if (leader)
      std::fprintf(stderr, "weft-train: %s\n",
                   i + 1 < steps.size() ? ("falling back to step " + std::to_string(steps[i + 1]) +
                                           ", the committed checkpoint before it")
                                              .c_str()
                                        : "no older committed checkpoint: starting from step 1");
  }
  if (leader && steps.empty())
    std::printf("weft-train: --resume: no committed checkpoint in %s; starting from step 1\n",
                dir_.c_str());
  return 0;
}

}  // namespace weft::train
