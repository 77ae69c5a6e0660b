#include "train/step_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace weft::train {
namespace {

std::string format(const char* fmt, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

}  // namespace

std::string progress_line(const StepStats& s, int steps) {
  std::string line = format(
      "step %4d/%d | loss %.4f | lr %.2e | %.0f tok/s | fwd %.1f bwd %.1f comm %.1f opt %.1f ms"
      " | comm hidden %.0f%% | norm %.3f",
      s.step, steps, s.loss, s.lr, s.tokens_per_s, s.ms_forward, s.ms_backward,
      s.ms_comm_exposed, s.ms_optimizer, 100 * s.comm_hidden, s.grad_norm);
  if (s.ms_tp_comm >= 0) line += format(" | tp comm %.1f ms", s.ms_tp_comm);
  if (s.pipeline_idle >= 0) line += format(" | pipeline idle %.0f%%", 100 * s.pipeline_idle);
  if (s.pipeline_idle_sim >= 0) line += format(", simulated %.0f%%", 100 * s.pipeline_idle_sim);
  return line;
}

std::string eval_line(const EvalStats& e) {
  return format("eval at step %d | loss %.4f | perplexity %.3f", e.step, e.loss, e.perplexity);
}

std::string json_line(const StepStats& s) {
  nlohmann::ordered_json j = {
      {"step", s.step},
      {"loss", s.loss},
      {"lr", s.lr},
      {"grad_norm", s.grad_norm},
      {"tokens_per_s", s.tokens_per_s},
      {"model_gflops", s.model_gflops},
      {"ms_forward", s.ms_forward},
      {"ms_backward", s.ms_backward},
      {"ms_comm_exposed", s.ms_comm_exposed},
      {"ms_comm", s.ms_comm},
      {"ms_optimizer", s.ms_optimizer},
      {"ms_step", s.ms_step},
      {"comm_hidden", s.comm_hidden},
  };
  if (s.pipeline_idle >= 0) j["pipeline_idle"] = s.pipeline_idle;
  if (s.pipeline_idle_sim >= 0) j["pipeline_idle_sim"] = s.pipeline_idle_sim;
  if (s.pipeline_idle_replay >= 0) j["pipeline_idle_replay"] = s.pipeline_idle_replay;
  if (s.pipeline_descheduled >= 0) j["pipeline_descheduled"] = s.pipeline_descheduled;
  if (s.pipeline_sim_cores) j["pipeline_sim_cores"] = s.pipeline_sim_cores;
  if (s.ms_tp_comm >= 0) j["ms_tp_comm"] = s.ms_tp_comm;
  return j.dump();
}

std::string json_line(const EvalStats& e) {
  nlohmann::ordered_json j = {{"step", e.step}, {"eval_loss", e.loss}, {"eval_ppl", e.perplexity}};
  return j.dump();
}

std::string divergence(const StepStats& s) {
  if (std::isfinite(s.loss) && std::isfinite(s.grad_norm)) return "";
  return format(
      "the run diverged at step %d: loss %g, gradient norm %g (lr %.3g); stopped there. Lower "
      "--lr, or lengthen --warmup, or clip harder with --clip",
      s.step, s.loss, s.grad_norm, s.lr);
}

Summary summarize(const std::vector<StepStats>& steps, std::optional<double> eval_loss,
                  double seconds, int skip) {
  Summary s;
  s.steps = static_cast<int>(steps.size());
  s.eval_loss = eval_loss;
  s.seconds = seconds;
  if (steps.empty()) return s;
  s.loss = steps.back().loss;
  size_t first = steps.size() > static_cast<size_t>(skip) ? skip : 0;
  double ms = 0, tokens = 0, flop = 0, comm = 0, exposed = 0;
  for (size_t i = first; i < steps.size(); i++) {
    const StepStats& st = steps[i];
    ms += st.ms_step;
    tokens += st.tokens_per_s * st.ms_step / 1e3;
    flop += st.model_gflops * st.ms_step / 1e3;
    comm += st.ms_comm;
    exposed += st.ms_comm_exposed;
  }
  // Rates over the averaged steps as a whole (work / time), not means of per-step rates.
  s.ms_step = ms / static_cast<double>(steps.size() - first);
  s.tokens_per_s = ms > 0 ? tokens / (ms / 1e3) : 0;
  s.model_gflops = ms > 0 ? flop / (ms / 1e3) : 0;
  s.comm_hidden = comm > 0 ? std::max(0.0, 1.0 - exposed / comm) : 1.0;
  return s;
}

std::string summary_line(const Summary& s) {
  std::string eval = s.eval_loss ? format(" eval_loss=%.4f", *s.eval_loss) : "";
  return format(
      "summary: steps=%d loss=%.4f%s tokens_per_s=%.1f model_gflops=%.2f ms_step=%.1f "
      "comm_hidden=%.3f time_s=%.1f",
      s.steps, s.loss, eval.c_str(), s.tokens_per_s, s.model_gflops, s.ms_step, s.comm_hidden,
      s.seconds);
}

JsonLog::JsonLog(const std::string& path) : file_(std::fopen(path.c_str(), "a")) {
  if (!file_)
    throw Error(ErrorCode::InvalidArgument, "cannot open the JSON log '" + path +
                                                "' for appending: " + std::strerror(errno) +
                                                "; check --log-json");
}

JsonLog::~JsonLog() { std::fclose(file_); }

void JsonLog::write(const std::string& line) {
  std::fputs(line.c_str(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

}  // namespace weft::train
