#pragma once
// What one training step reports: the progress line on the terminal, the JSON log line, and
// the final summary averaged over the steps after warm-up.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace weft::train {

struct StepStats {
  int step = 0;
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double model_gflops = 0;  // model FLOPs per token x tokens/s, all ranks together
  double ms_forward = 0;
  double ms_backward = 0;
  double ms_comm_exposed = 0;  // waiting for gradient reductions after backward
  double ms_comm = 0;          // time the reductions ran, hidden or not
  double ms_optimizer = 0;     // clipping, AdamW, ZeRO-1's parameter gather
  double ms_step = 0;
  double comm_hidden = 1;      // share of ms_comm that overlapped backward
  // The pipeline's ranks' share of their time outside compute, waiting for a neighbour or in
  // p2p copies (-1: no pipeline); what the schedule simulator predicts from the step's own
  // costs on the cores the ranks share, and what it gives replaying the step's computes as
  // they ran (train/pipeline_figures.h); the share of the time the ranks were woken in p2p but
  // had no core, which is in neither.
  double pipeline_idle = -1;
  double pipeline_idle_sim = -1;
  double pipeline_idle_replay = -1;
  double pipeline_descheduled = -1;
  // How the simulator shared the cores: "per_cpu" (each CPU among the ranks whose computes ran
  // on it) or "shared" (all the cores among all runnable ranks: placement unknown, a GPU, or
  // several threads per rank); null: no pipeline.
  const char* pipeline_sim_cores = nullptr;
  double ms_tp_comm = -1;      // tensor-parallel reductions inside forward and backward (-1: no tp)
};

struct EvalStats {
  int step = 0;
  double loss = 0;
  double perplexity = 0;
};

// "step   12/50 | loss 3.2145 | lr 1.20e-03 | 5234 tok/s | fwd 40.1 bwd 80.3 comm 1.2 opt 3.0 ms
//  | comm hidden 95% | norm 0.83"
std::string progress_line(const StepStats& s, int steps);
std::string eval_line(const EvalStats& e);
// One JSON object, no trailing newline.
std::string json_line(const StepStats& s);
std::string json_line(const EvalStats& e);
// Empty while the step's loss and gradient norm are finite; else why the run stops there (a
// diverged run only makes NaN from then on), naming the step and the values, as Megatron
// checks its gradient norm.
std::string divergence(const StepStats& s);

// Means over the steps after the first `skip` (the first steps pay for page faults and
// thread start-up), or over all steps when there are no more than that.
struct Summary {
  int steps = 0;
  double loss = 0;  // the last step's
  std::optional<double> eval_loss;
  double tokens_per_s = 0;
  double model_gflops = 0;
  double ms_step = 0;
  double comm_hidden = 1;
  double seconds = 0;  // wall time of the whole run
};
Summary summarize(const std::vector<StepStats>& steps, std::optional<double> eval_loss,
                  double seconds, int skip = 3);
std::string summary_line(const Summary& s);

// Appends lines to a file (a resumed run continues the same log). Flushes every line so the
// log survives a crash.
class JsonLog {
 public:
  // Throws InvalidArgument naming the path (given as --log-json: a usage error) when it cannot
  // be opened.
  explicit JsonLog(const std::string& path);
  ~JsonLog();
  JsonLog(const JsonLog&) = delete;
  JsonLog& operator=(const JsonLog&) = delete;
  void write(const std::string& line);

 private:
  std::FILE* file_;
};

}  // namespace weft::train
