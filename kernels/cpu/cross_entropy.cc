#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "kernels/cpu/vector_math.h"
#include "runtime/error.h"

namespace weft::kernels::cpu {
namespace {

void check_targets(const int32_t* targets, int BT, int V, const char* op) {
  for (int i = 0; i < BT; i++) {
    if (targets[i] < 0 || targets[i] >= V) {
      throw Error(ErrorCode::InvalidArgument,
                  std::string(op) + ": target " + std::to_string(targets[i]) + " at row " +
                      std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(V) +
                      "); check the tokenizer's vocabulary size against the model's");
    }
  }
}

// Softmax of one row in place over [0, V), zero over [V, Vp). Returns log(sum of exp) + max,
// so that the caller can form -log p[target] = logsumexp - logit[target] without the log of a
// probability that may have underflowed to 0.
WEFT_KERNEL_PER_ISA float softmax_row(float* out, const float* logits, int V, int Vp) {
  float max = logits[0];
#pragma omp simd reduction(max : max)
  for (int j = 0; j < V; j++) max = std::max(max, logits[j]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < V; j++) {
    out[j] = detail::exp_approx(logits[j] - max);
    sum += out[j];
  }
  const float inv = 1.0f / sum;
  for (int j = 0; j < V; j++) out[j] *= inv;
  for (int j = V; j < Vp; j++) out[j] = 0.0f;
  return std::log(sum) + max;
}

WEFT_KERNEL_PER_ISA void scaled_row_gradient(float* dlogits, const float* probs, int target,
                                             float scale, int V, int Vp) {
  for (int j = 0; j < V; j++) dlogits[j] = probs[j] * scale;
  dlogits[target] -= scale;
  for (int j = V; j < Vp; j++) dlogits[j] = 0.0f;
}

}  // namespace

float crossentropy_forward(const CpuContext&, float* losses, float* probs, const float* logits,
                           const int32_t* targets, int BT, int V, int Vp) {
  check_targets(targets, BT, V, "crossentropy_forward");
  detail::FlushDenormals flush;
  double total = 0.0;
  for (int i = 0; i < BT; i++) {
    const size_t row = static_cast<size_t>(i) * Vp;
    // Read the target's logit before the softmax may overwrite it in place.
    const float target_logit = logits[row + targets[i]];
    const float logsumexp = softmax_row(probs + row, logits + row, V, Vp);
    losses[i] = logsumexp - target_logit;
    total += losses[i];
  }
  return BT > 0 ? static_cast<float>(total / BT) : 0.0f;
}

void crossentropy_backward(const CpuContext&, float* dlogits, const float* probs,
                           const int32_t* targets, float dloss_scale, int BT, int V, int Vp) {
  check_targets(targets, BT, V, "crossentropy_backward");
  detail::FlushDenormals flush;
  for (int i = 0; i < BT; i++) {
    const size_t row = static_cast<size_t>(i) * Vp;
    scaled_row_gradient(dlogits + row, probs + row, targets[i], dloss_scale, V, Vp);
  }
}

float mean_loss(const CpuContext&, const float* losses, int BT) {
  double sum = 0;
  for (int i = 0; i < BT; i++) sum += losses[i];
  return static_cast<float>(sum / BT);
}

}  // namespace weft::kernels::cpu
