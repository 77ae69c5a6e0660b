// weft-bench-sgemm: GFLOP/s of single-precision GEMM through cblas_sgemm, the ceiling that
// bench/bench-train measures the trainers' model FLOP/s against.
//
//   weft-bench-sgemm --threads 2
//   weft-bench-sgemm --shapes 1024,2048,1024x3072x768 --tokens 8192 --d-model 768 --json
//
// Each shape is C[M,N] = A[M,K] x B[N,K]^T, row-major, B laid out like a Linear weight
// [out, in] (what a model's forward does). Shapes are the --shapes list (N for N x N x N, or
// MxNxK) followed by the GPT's own matmuls for --tokens (batch x seq) rows and --d-model C:
// qkv [T,C]x[3C,C]^T, fc [T,C]x[4C,C]^T, fc_proj [T,4C]x[C,4C]^T and the LM head
// [T,C]x[256,C]^T. Every shape is timed --reps times after one warm-up call (which also
// faults in C and lets OpenBLAS start its threads); the best rep is reported, and the peak is
// the best shape.
//
// OpenBLAS picks its kernels when it loads, from OPENBLAS_CORETYPE if set: the core in use is
// printed so a slow result from fallback kernels (Haswell on an AVX-512 CPU) is visible.
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "runtime/clock.h"

namespace weft::bench {
namespace {

constexpr const char* kProgram = "weft-bench-sgemm";

struct Shape {
  std::string name;
  size_t m = 0, n = 0, k = 0;
  double flop() const { return 2.0 * double(m) * double(n) * double(k); }
};

struct Options {
  std::vector<Shape> shapes;
  size_t threads = 0;  // 0: OpenBLAS's own default
  size_t reps = 10;
  bool json = false;
};

// "2048" -> 2048 x 2048 x 2048; "1024x768x256" -> M=1024, N=768, K=256.
Shape parse_shape(const std::string& text) {
  std::vector<size_t> dims;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('x', start);
    if (end == std::string::npos) end = text.size();
    dims.push_back(parse_count(text.substr(start, end - start), "shapes", 0));
    start = end + 1;
  }
  if ((dims.size() != 1 && dims.size() != 3) ||
      std::find(dims.begin(), dims.end(), 0) != dims.end())
    throw UsageError("--shapes: '" + text + "' is not N or MxNxK with positive numbers");
  if (dims.size() == 1) return {text, dims[0], dims[0], dims[0]};
  return {text, dims[0], dims[1], dims[2]};
}

// The GPT's forward matmuls for `tokens` rows of width `c` (see the comment at the top).
std::vector<Shape> model_shapes(size_t tokens, size_t c) {
  return {{"qkv", tokens, 3 * c, c},
          {"fc", tokens, 4 * c, c},
          {"fc_proj", tokens, c, 4 * c},
          {"lm_head", tokens, 256, c}};
}

// Returns false when --help was asked for (usage already printed).
bool parse_options(int argc, char** argv, Options* o) {
  std::string shapes = "1024,2048";
  std::string tokens = "1024";
  std::string d_model = "256";
  std::string threads;
  std::string reps = "10";
  bool help = false;
  FlagParser flags(std::string("usage: ") + kProgram +
                   " [flags]\nBest-of-reps GFLOP/s of cblas_sgemm (f32) for square sizes and a "
                   "GPT's own matmul shapes.");
  flags.add_value("shapes", "LIST", "comma list of N (N x N x N) or MxNxK (C[M,N] = A B^T)",
                  &shapes);
  flags.add_value("tokens", "N", "rows of the model's matmuls (batch x seq); 0 skips them",
                  &tokens);
  flags.add_value("d-model", "C", "model width for the model's matmul shapes", &d_model);
  flags.add_value("threads", "N", "openblas_set_num_threads (default: OpenBLAS's own choice)",
                  &threads);
  flags.add_value("reps", "N", "timed calls per shape, the best one counts", &reps);
  flags.add_switch("json", "one JSON object per line instead of text", &o->json);
  flags.parse(argc, argv, &help);
  if (help) {
    std::printf("%s", flags.usage().c_str());
    return false;
  }
  size_t start = 0;
  while (!shapes.empty() && start <= shapes.size()) {
    size_t end = shapes.find(',', start);
    if (end == std::string::npos) end = shapes.size();
    o->shapes.push_back(parse_shape(shapes.substr(start, end - start)));
    start = end + 1;
  }
  size_t rows = tokens == "0" ? 0 : parse_count(tokens, "tokens", 0);
  if (rows > 0) {
    for (Shape& s : model_shapes(rows, parse_count(d_model, "d-model", 0))) o->shapes.push_back(s);
  }
  if (o->shapes.empty()) throw UsageError("nothing to time: give --shapes or --tokens");
  o->threads = parse_count(threads, "threads", 0);
  o->reps = parse_count(reps, "reps", 10);
  return true;
}

// Seconds of the fastest of `reps` calls of C = A B^T.
double best_seconds(const Shape& s, size_t reps) {
  // Small values of both signs: no overflow, no denormals, nothing a kernel could skip.
  std::vector<float> a(s.m * s.k), b(s.n * s.k), c(s.m * s.n, 0.0f);
  for (size_t i = 0; i < a.size(); i++) a[i] = float(int(i % 13) - 6) / 16.0f;
  for (size_t i = 0; i < b.size(); i++) b[i] = float(int(i % 7) - 3) / 8.0f;
  auto call = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.m), int(s.n), int(s.k), 1.0f,
                a.data(), int(s.k), b.data(), int(s.k), 0.0f, c.data(), int(s.n));
  };
  call();  // warm-up
  double best = 1e30;
  for (size_t r = 0; r < reps; r++) {
    auto t0 = Clock::now();
    call();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

int run(const Options& o) {
  if (o.threads > 0) openblas_set_num_threads(int(o.threads));
  const int threads = openblas_get_num_threads();
  const std::string core = openblas_get_corename();
  double peak = 0;
  std::string peak_shape;
  if (!o.json)
    std::printf("%s: cblas_sgemm f32, OpenBLAS core %s, %d threads, best of %zu\n", kProgram,
                core.c_str(), threads, o.reps);
  for (const Shape& s : o.shapes) {
    double seconds = best_seconds(s, o.reps);
    double gflops = s.flop() / seconds / 1e9;
    if (gflops > peak) {
      peak = gflops;
      peak_shape = s.name;
    }
    if (o.json) {
      std::printf(
          "{\"shape\":\"%s\",\"m\":%zu,\"n\":%zu,\"k\":%zu,\"threads\":%d,\"core\":\"%s\","
          "\"best_ms\":%.4f,\"gflops\":%.2f}\n",
          s.name.c_str(), s.m, s.n, s.k, threads, core.c_str(), seconds * 1e3, gflops);
    } else {
      std::printf("  %-10s M %5zu N %5zu K %5zu  %9.3f ms  %8.1f GFLOP/s\n", s.name.c_str(), s.m,
                  s.n, s.k, seconds * 1e3, gflops);
    }
    std::fflush(stdout);
  }
  if (o.json) {
    std::printf("{\"peak_gflops\":%.2f,\"peak_shape\":\"%s\",\"threads\":%d,\"core\":\"%s\"}\n",
                peak, peak_shape.c_str(), threads, core.c_str());
  } else {
    std::printf("peak: %.1f GFLOP/s (%s, %d threads, core %s)\n", peak, peak_shape.c_str(), threads,
                core.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) {
  using namespace weft::bench;
  Options options;
  if (auto status = parse_command_line(kProgram, argc, argv, &options, parse_options))
    return *status;
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    return 1;
  }
}
