#include "train/trainer_setup.h"

namespace weft::train {

std::vector<uint64_t> allgather_host_words(comm::Communicator& comm,
                                           const std::vector<uint64_t>& mine) {
  std::vector<uint64_t> in = mine, all(mine.size() * static_cast<size_t>(comm.size()));
  comm.allgather(Tensor::flat(in.data(), DType::i64, in.size()),
                 Tensor::flat(all.data(), DType::i64, all.size()))
      .wait();
  return all;
}

parallel::DataParallelOptions data_parallel_options(const TrainOptions& o) {
  parallel::DataParallelOptions d;
  d.bucket_bytes = static_cast<size_t>(o.bucket_mb * (1 << 20));
  d.zero1 = o.zero1;
  d.wire_dtype = o.grad_dtype == "bf16" ? DType::bf16 : DType::f32;
  return d;
}

std::vector<parallel::DecaySpan> decay_spans(const models::GptLayout& layout) {
  std::vector<parallel::DecaySpan> spans;
  for (const auto& t : layout.tensors()) spans.push_back({t.offset, t.count, t.decay});
  return spans;
}

parallel::AdamWOptions adamw_options(const TrainOptions& o) {
  parallel::AdamWOptions a;
  a.weight_decay = static_cast<float>(o.weight_decay);
  return a;
}

void load_micro_batch(const Corpus& corpus, const TrainOptions& o, int rank, int ranks, int step,
                      int m, int32_t* inputs, int32_t* targets) {
  const int per_rank = o.batch / ranks;
  corpus.train_batch(static_cast<uint64_t>(step - 1), o.batch, rank * per_rank + m * o.micro_batch,
                     o.micro_batch, o.model.seq, inputs, targets);
}

void record_comm(StepStats& s, const parallel::CommStats& comm) {
  s.ms_comm_exposed = comm.exposed_seconds * 1e3;
  s.ms_comm = comm.comm_seconds * 1e3;
  s.comm_hidden = comm.hidden_fraction();
}

float clip_factor(const TrainOptions& o, double grad_norm) {
  if (o.clip <= 0 || grad_norm <= o.clip) return 1.0f;
  return static_cast<float>(o.clip / (grad_norm + 1e-6));
}

void record_rates(StepStats& s, const TrainOptions& o, Clock::time_point start) {
  s.ms_step = ms_since(start);
  const double tokens = static_cast<double>(o.batch) * o.model.seq;
  s.tokens_per_s = tokens / (s.ms_step / 1e3);
  s.model_gflops = s.tokens_per_s * o.model.flops_per_token() / 1e9;
}

float loss_scale(const TrainOptions& o) {
  return 1.0f / (static_cast<float>(o.accumulation()) * o.micro_batch * o.model.seq);
}

}  // namespace weft::train
