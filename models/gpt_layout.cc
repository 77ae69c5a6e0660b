#include "models/gpt_layout.h"

#include <cmath>
#include <cstring>

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

size_t product(const std::vector<size_t>& shape) {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

}  // namespace

StagePlan StagePlan::of(const GptConfig& config, int stage, int stages, int tp_rank,
                        int tp_size) {
  require(stages >= 1 && stage >= 0 && stage < stages,
          "pipeline stage " + std::to_string(stage) + " of " + std::to_string(stages));
  require(config.layers % stages == 0,
          "--layers " + std::to_string(config.layers) + " cannot be cut into " +
              std::to_string(stages) + " pipeline stages of equal size: make --layers a multiple "
              "of " + std::to_string(stages));
  StagePlan p;
  p.layers = config.layers / stages;
  p.first_layer = stage * p.layers;
  p.first = stage == 0;
  p.last = stage == stages - 1;
  p.tp_rank = tp_rank;
  p.tp_size = tp_size;
  return p;
}

std::vector<size_t> ParamTensor::local_shape() const {
  std::vector<size_t> s = global_shape;
  if (split_dim >= 0) s[static_cast<size_t>(split_dim)] = split_length;
  return s;
}

GptLayout::GptLayout(const GptConfig& config, const StagePlan& plan)
    : config_(config), plan_(plan) {
  config.validate();
  if (plan_.layers < 0) plan_.layers = config.layers - plan_.first_layer;
  require(plan_.first_layer >= 0 && plan_.layers >= 0 &&
              plan_.first_layer + plan_.layers <= config.layers,
          "a stage of layers " + std::to_string(plan_.first_layer) + ".." +
              std::to_string(plan_.first_layer + plan_.layers - 1) + " in a model of " +
              std::to_string(config.layers) + " layers");
  const int tp = plan_.tp_size;
  require(tp >= 1 && plan_.tp_rank >= 0 && plan_.tp_rank < tp,
          "tensor-parallel rank " + std::to_string(plan_.tp_rank) + " of " + std::to_string(tp));
  require(config.heads % tp == 0, "--heads " + std::to_string(config.heads) +
                                      " cannot be split over --tp " + std::to_string(tp) +
                                      ": make --heads a multiple of " + std::to_string(tp));
  require(config.padded_vocab % tp == 0,
          "the padded vocabulary (" + std::to_string(config.padded_vocab) +
              ") cannot be split over --tp " + std::to_string(tp) +
              ": choose a --tp that divides it");

  const size_t C = config.d_model, Vp = config.padded_vocab;
  const float std_w = 0.02f;
  // GPT-2 scales the init of the projections that write into the residual stream by
  // 1/sqrt(2 x layers), so the stream's variance does not grow with depth.
  const float std_proj = std_w / std::sqrt(2.0f * config.layers);
  auto add = [&](std::string name, int global_index, std::vector<size_t> shape, int split_dim,
                 bool decay, float std, float value) {
    ParamTensor t;
    t.name = std::move(name);
    t.global_index = global_index;
    t.global_shape = std::move(shape);
    t.decay = decay;
    t.init_std = std;
    t.init_value = value;
    if (split_dim >= 0 && tp > 1) {
      t.split_dim = split_dim;
      t.split_length = t.global_shape[static_cast<size_t>(split_dim)] / static_cast<size_t>(tp);
      t.split_start = t.split_length * static_cast<size_t>(plan_.tp_rank);
    }
    t.offset = total_;
    t.count = product(t.local_shape());
    total_ += t.count;
    tensors_.push_back(std::move(t));
  };
  auto add_wte = [&] {
    wte_ = static_cast<int>(tensors_.size());
    add("wte", 0, {Vp, C}, 0, true, std_w, 0);
  };
  if (plan_.first) {
    add_wte();
    add("wpe", 1, {static_cast<size_t>(config.seq), C}, -1, true, std_w, 0);
  }
  block0_ = static_cast<int>(tensors_.size());
  for (int l = plan_.first_layer; l < plan_.first_layer + plan_.layers; l++) {
    std::string h = "h" + std::to_string(l) + ".";
    int g = 2 + l * kPerLayer;
    add(h + "ln1.w", g + kLn1W, {C}, -1, false, 0, 1);
    add(h + "ln1.b", g + kLn1B, {C}, -1, false, 0, 0);
    add(h + "qkv.w", g + kQkvW, {3, C, C}, 1, true, std_w, 0);
    add(h + "qkv.b", g + kQkvB, {3, C}, 1, false, 0, 0);
    add(h + "attn_proj.w", g + kProjW, {C, C}, 1, true, std_proj, 0);
    add(h + "attn_proj.b", g + kProjB, {C}, -1, false, 0, 0);
    add(h + "ln2.w", g + kLn2W, {C}, -1, false, 0, 1);
    add(h + "ln2.b", g + kLn2B, {C}, -1, false, 0, 0);
    add(h + "fc.w", g + kFcW, {4 * C, C}, 0, true, std_w, 0);
    add(h + "fc.b", g + kFcB, {4 * C}, 0, false, 0, 0);
    add(h + "fc_proj.w", g + kFcProjW, {C, 4 * C}, 1, true, std_proj, 0);
    add(h + "fc_proj.b", g + kFcProjB, {C}, -1, false, 0, 0);
  }
  if (plan_.last) {
    int g = 2 + config.layers * kPerLayer;
    add("lnf.w", g, {C}, -1, false, 0, 1);
    add("lnf.b", g + 1, {C}, -1, false, 0, 0);
    if (!plan_.first) add_wte();  // the tied head's own copy
  }
}

std::vector<size_t> GptLayout::counts() const {
  std::vector<size_t> c;
  for (const auto& t : tensors_) c.push_back(t.count);
  return c;
}

void GptLayout::init_params(float* params, uint64_t seed) const {
  std::vector<float> whole;
  for (const ParamTensor& t : tensors_) {
    float* p = params + t.offset;
    if (t.init_std == 0) {
      for (size_t j = 0; j < t.count; j++) p[j] = t.init_value;
      continue;
    }
    Random rng(seed * 0x100000001b3ull + static_cast<uint64_t>(t.global_index));
    if (t.split_dim < 0) {
      rng.normal(p, t.count, t.init_std);
      continue;
    }
    whole.resize(product(t.global_shape));
    rng.normal(whole.data(), whole.size(), t.init_std);
    copy_slice(t, whole.data(), p);
  }
}

void copy_slice(const ParamTensor& t, const float* global, float* local) {
  if (t.split_dim < 0) {
    std::memcpy(local, global, t.count * sizeof(float));
    return;
  }
  // `outer` leading blocks, each holding split_length of the dimension's `length` rows of
  // `inner` elements, from split_start on.
  size_t outer = 1, inner = 1;
  for (int d = 0; d < t.split_dim; d++) outer *= t.global_shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(t.split_dim) + 1; d < t.global_shape.size(); d++)
    inner *= t.global_shape[d];
  const size_t length = t.global_shape[static_cast<size_t>(t.split_dim)];
  for (size_t o = 0; o < outer; o++)
    std::memcpy(local + o * t.split_length * inner, global + (o * length + t.split_start) * inner,
                t.split_length * inner * sizeof(float));
}

}  // namespace weft::models
