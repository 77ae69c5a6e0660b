#include "bench/bench_report.h"

#include <cinttypes>

namespace weft::bench {

double busbw_factor(const std::string& op, int ranks) {
  if (ranks <= 1) return op == "broadcast" ? 1.0 : 0.0;  // nothing crosses a link
  double n = ranks;
  if (op == "allreduce") return 2.0 * (n - 1) / n;
  if (op == "allgather" || op == "reduce_scatter") return (n - 1) / n;
  return 1.0;  // broadcast
}

double Measurement::algbw_gbs() const {
  return seconds_per_op > 0 ? static_cast<double>(bytes) / seconds_per_op / 1e9 : 0.0;
}

double Measurement::busbw_gbs() const { return algbw_gbs() * busbw_factor(op, ranks); }

std::string json_line(const Measurement& m) {
  char line[512];
  std::snprintf(line, sizeof line,
                "{\"op\":\"%s\",\"backend\":\"%s\",\"ranks\":%d,\"bytes\":%zu,\"time_us\":%.3f,"
                "\"algbw_gbs\":%.6f,\"busbw_gbs\":%.6f,\"iters\":%zu,\"path\":\"%s\"}",
                m.op.c_str(), m.backend.c_str(), m.ranks, m.bytes, m.time_us(), m.algbw_gbs(),
                m.busbw_gbs(), m.iters, m.path.c_str());
  return line;
}

void print_table_header(std::FILE* out) {
  std::fprintf(out, "%-15s %-8s %5s %12s %10s %12s %12s %12s %8s %-9s\n", "op", "backend",
               "ranks", "bytes", "size", "time_us", "algbw_GB/s", "busbw_GB/s", "iters", "path");
}

void print_table_row(std::FILE* out, const Measurement& m) {
  std::fprintf(out, "%-15s %-8s %5d %12zu %10s %12.2f %12.3f %12.3f %8zu %-9s\n",
               m.op.c_str(), m.backend.c_str(), m.ranks, m.bytes, format_bytes(m.bytes).c_str(),
               m.time_us(), m.algbw_gbs(), m.busbw_gbs(), m.iters, m.path.c_str());
  std::fflush(out);
}

void print_measurement(const Measurement& m, bool json) {
  if (json)
    std::printf("%s\n", json_line(m).c_str());
  else
    print_table_row(stdout, m);
  std::fflush(stdout);
}

std::string json_line(const CopyBandwidth& c) {
  char line[256];
  std::snprintf(line, sizeof line,
                "{\"op\":\"memcpy\",\"backend\":\"%s\",\"ranks\":%d,\"bytes\":%zu,"
                "\"copy_gbs\":%.4f}",
                c.backend.c_str(), c.ranks, c.bytes, c.copy_gbs);
  return line;
}

void print_table_line(std::FILE* out, const CopyBandwidth& c) {
  std::fprintf(out,
               "memcpy of %s on each of %d ranks at once: %.2f GB/s per rank "
               "(bytes read + written, slowest rank)\n",
               format_bytes(c.bytes).c_str(), c.ranks, c.copy_gbs);
  std::fflush(out);
}

std::string format_bytes(size_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char text[32];
  if (v == static_cast<double>(static_cast<uint64_t>(v)))
    std::snprintf(text, sizeof text, "%.0f %s", v, kUnits[unit]);
  else
    std::snprintf(text, sizeof text, "%.1f %s", v, kUnits[unit]);
  return text;
}

}  // namespace weft::bench
