#include "models/gpt_config.h"

#include "runtime/error.h"

namespace weft::models {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, what);
}

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

}  // namespace weft::models
