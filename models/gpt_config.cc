#include "models/gpt_config.h"

#include <cmath>

#include "runtime/error.h"

namespace weft::models {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, what);
}

// SplitMix64: a tiny generator with a fixed, documented sequence, so weights do not depend on
// the standard library's distribution implementations.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1]: never 0, so the log below is finite.
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
  // Box-Muller, both outputs used.
  void normal(float* out, size_t n, float std) {
    constexpr double kTwoPi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
      double r = std::sqrt(-2.0 * std::log(uniform())), a = kTwoPi * uniform();
      out[i] = static_cast<float>(r * std::cos(a) * std);
      if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(a) * std);
    }
  }

 private:
  uint64_t state_;
};

}  // namespace

void GptConfig::validate() const {
  require(layers >= 1, "--layers must be at least 1, got " + std::to_string(layers));
  require(d_model >= 1, "--d-model must be at least 1, got " + std::to_string(d_model));
  require(heads >= 1, "--heads must be at least 1, got " + std::to_string(heads));
  require(d_model % heads == 0, "--heads " + std::to_string(heads) + " does not divide --d-model " +
                                    std::to_string(d_model) +
                                    ": every head needs d-model / heads channels");
  require(seq >= 2, "--seq must be at least 2, got " + std::to_string(seq));
  require(vocab >= 1 && padded_vocab >= vocab,
          "the padded vocabulary (" + std::to_string(padded_vocab) +
              ") must hold the vocabulary (" + std::to_string(vocab) + ")");
}

double GptConfig::flops_per_token() const {
  double C = d_model, L = layers;
  double matmul_weights = L * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + padded_vocab * C;
  return 6 * matmul_weights + 6 * L * seq * C;
}

double GptConfig::parameters() const {
  const double C = d_model;
  // wte, wpe; per block ln1, qkv, attn_proj, ln2, fc, fc_proj (weights and biases); lnf.
  return padded_vocab * C + seq * C + layers * (12 * C * C + 13 * C) + 2 * C;
}

GptLayout::GptLayout(const GptConfig& config) : layers_(config.layers) {
  config.validate();
  const size_t C = config.d_model;
  const float std_w = 0.02f;
  // GPT-2 scales the init of the projections that write into the residual stream by
  // 1/sqrt(2 x layers), so the stream's variance does not grow with depth.
  const float std_proj = std_w / std::sqrt(2.0f * config.layers);
  auto add = [&](std::string name, size_t count, bool decay, float std, float value) {
    tensors_.push_back({std::move(name), total_, count, decay, std, value});
    total_ += count;
  };
  add("wte", config.padded_vocab * C, true, std_w, 0);
  add("wpe", config.seq * C, true, std_w, 0);
  for (int l = 0; l < config.layers; l++) {
    std::string h = "h" + std::to_string(l) + ".";
    add(h + "ln1.w", C, false, 0, 1);
    add(h + "ln1.b", C, false, 0, 0);
    add(h + "qkv.w", 3 * C * C, true, std_w, 0);
    add(h + "qkv.b", 3 * C, false, 0, 0);
    add(h + "attn_proj.w", C * C, true, std_proj, 0);
    add(h + "attn_proj.b", C, false, 0, 0);
    add(h + "ln2.w", C, false, 0, 1);
    add(h + "ln2.b", C, false, 0, 0);
    add(h + "fc.w", 4 * C * C, true, std_w, 0);
    add(h + "fc.b", 4 * C, false, 0, 0);
    add(h + "fc_proj.w", 4 * C * C, true, std_proj, 0);
    add(h + "fc_proj.b", C, false, 0, 0);
  }
  add("lnf.w", C, false, 0, 1);
  add("lnf.b", C, false, 0, 0);
}

std::vector<size_t> GptLayout::counts() const {
  std::vector<size_t> c;
  for (const auto& t : tensors_) c.push_back(t.count);
  return c;
}

void GptLayout::init_params(float* params, uint64_t seed) const {
  const auto& tensors = tensors_;
  for (size_t i = 0; i < tensors.size(); i++) {
    const ParamTensor& t = tensors[i];
    float* p = params + t.offset;
    if (t.init_std > 0) {
      Random rng(seed * 0x100000001b3ull + i);
      rng.normal(p, t.count, t.init_std);
    } else {
      for (size_t j = 0; j < t.count; j++) p[j] = t.init_value;
    }
  }
}

}  // namespace weft::models
