#include "train/memory_check.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "models/gpt_activations.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  for (; bytes >= 1024 && u < 6; u++) bytes /= 1024;
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 6 && bytes >= 1024 ? "%.3g %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

// "21472", "21.5M", "480G", "1.92e+20".
std::string count_text(double n) {
  char buf[64];
  if (n >= 1e12)
    std::snprintf(buf, sizeof buf, "%.3g", n);
  else if (n >= 1e9)
    std::snprintf(buf, sizeof buf, "%.3gG", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3gM", n / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

// AdamW's two moments: every parameter's, or with ZeRO-1 this rank's shard of them.
double moments(const TrainOptions& o, double params, int ranks) {
  return 2 * 4 * (o.zero1 ? params / ranks : params);
}

}  // namespace

MemoryNeed host_memory_need(const TrainOptions& o, int ranks, int lanes) {
  const double P = o.model.parameters();
  MemoryNeed need;
  // With --ckpt-dir, the checkpoints' snapshot: the f32 parameters and this rank's moments.
  const double snapshot = o.ckpt_dir.empty() ? 0 : 4 * P + moments(o, P, ranks);
  if (o.device == "cuda") {
    // The parameters are made on the host in f32, and in bf16 for a bf16 model's copy.
    need.state = P * (o.precision == "bf16" ? 4 + 2 : 4) + snapshot;
    return need;
  }
  // Parameters and gradients in f32, a gradient buffer per extra lane, the bf16 wire copy.
  need.state = 4 * P * (2 + (lanes - 1)) + moments(o, P, ranks) +
               (o.grad_dtype == "bf16" ? 2 * P : 0) + snapshot;
  // Every lane's model holds activations for its share of the micro-batch.
  const int share = (o.micro_batch + lanes - 1) / lanes;
  const models::GptMemory m = models::gpt_memory(models::StageSizes(o.model, models::StagePlan{}), share);
  need.activations = lanes * 4 * (m.elements + m.statistics);
  return need;
}

MemoryNeed gpu_memory_need(const TrainOptions& o, int ranks) {
  const double P = o.model.parameters();
  const double t = o.precision == "bf16" ? 2 : 4;  // bytes of the model's dtype
  MemoryNeed need;
  // f32 master weights, the model's bf16 copy, gradients in the model's dtype, the moments.
  need.state = 4 * P + (t == 2 ? 2 * P : 0) + t * P + moments(o, P, ranks);
  const models::GptMemory m = models::gpt_memory(models::StageSizes(o.model, models::StagePlan{}), o.micro_batch);
  need.activations = t * m.elements + 4 * m.statistics;
  return need;
}

std::optional<double> mem_available(const std::string& meminfo) {
  std::istringstream in(meminfo);
  for (std::string line; std::getline(in, line);) {
    double kib = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %lf kB", &kib) == 1) return kib * 1024;
  }
  return std::nullopt;
}

std::optional<double> host_memory_available() {
  std::ifstream in("/proc/meminfo");
  std::stringstream text;
  text << in.rdbuf();
  return mem_available(text.str());
}

void check_memory_fits(const TrainOptions& o, const MemoryNeed& need, int sharing, double available,
                       const std::string& where, const std::string& source) {
  if (need.total() * sharing <= available) return;
  const models::GptConfig& c = o.model;
  std::string total = bytes_text(need.total());
  if (sharing > 1)
    total +=
        " per rank x " + std::to_string(sharing) + " ranks = " + bytes_text(need.total() * sharing);
  std::string parts = bytes_text(need.state) + " for " + count_text(c.parameters()) +
                      " parameters with their gradients and optimizer state (--layers " +
                      std::to_string(c.layers) + ", --d-model " + std::to_string(c.d_model) + ")";
  if (need.activations > 0)
    parts += " and " + bytes_text(need.activations) + " for activations (--micro-batch " +
             std::to_string(o.micro_batch) + ", --seq " + std::to_string(c.seq) + ", --heads " +
             std::to_string(c.heads) + ", --d-model, --layers)";
  throw Error(ErrorCode::InvalidArgument, "these flags need about " + total + " of " + where +
                                              ", but only " + bytes_text(available) +
                                              " is available (" + source + "): " + parts +
                                              ". Make the model or the micro-batch smaller" +
                                              (sharing > 1 ? ", or start fewer ranks here" : ""));
}

}  // namespace weft::train
