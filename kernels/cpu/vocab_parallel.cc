#include "kernels/vocab_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>

namespace weft::kernels::cpu {
namespace {

bool held(int32_t token, int start, int local) { return token >= start && token < start + local; }

}  // namespace

void vocab_embedding_forward(const CpuContext&, float* out, const int32_t* tokens,
                             const float* wte, int BT, int C, int start, int local) {
  for (int i = 0; i < BT; i++) {
    float* o = out + static_cast<size_t>(i) * C;
    if (held(tokens[i], start, local))
      std::memcpy(o, wte + static_cast<size_t>(tokens[i] - start) * C, C * sizeof(float));
    else
      std::memset(o, 0, C * sizeof(float));
  }
}

void vocab_embedding_backward(const CpuContext&, float* dwte, const float* dout,
                              const int32_t* tokens, int BT, int C, int start, int local) {
  for (int i = 0; i < BT; i++) {
    if (!held(tokens[i], start, local)) continue;
    float* row = dwte + static_cast<size_t>(tokens[i] - start) * C;
    const float* d = dout + static_cast<size_t>(i) * C;
    for (int c = 0; c < C; c++) row[c] += d[c];
  }
}

void vocab_ce_max(const CpuContext&, float* max, const float* logits, int BT, int local,
                  int valid) {
  for (int i = 0; i < BT; i++) {
    const float* row = logits + static_cast<size_t>(i) * local;
    float m = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < valid; j++) m = std::max(m, row[j]);
    max[i] = m;
  }
}

void vocab_ce_sums(const CpuContext&, float* sums, const float* logits, const float* max,
                   const int32_t* targets, int BT, int local, int valid, int start) {
  for (int i = 0; i < BT; i++) {
    const float* row = logits + static_cast<size_t>(i) * local;
    float s = 0;
    for (int j = 0; j < valid; j++) s += std::exp(row[j] - max[i]);
    sums[i] = s;
    sums[BT + i] = held(targets[i], start, valid) ? row[targets[i] - start] : 0.0f;
  }
}

void vocab_ce_finish(const CpuContext&, float* losses, float* probs, const float* logits,
                     const float* max, const float* sums, int BT, int local, int valid) {
  for (int i = 0; i < BT; i++) {
    const float* row = logits + static_cast<size_t>(i) * local;
    float* p = probs + static_cast<size_t>(i) * local;
    losses[i] = std::log(sums[i]) + max[i] - sums[BT + i];
    const float inv = 1.0f / sums[i];
    for (int j = 0; j < valid; j++) p[j] = std::exp(row[j] - max[i]) * inv;
    for (int j = valid; j < local; j++) p[j] = 0.0f;
  }
}

void vocab_ce_backward(const CpuContext&, float* dlogits, const float* probs,
                       const int32_t* targets, float scale, int BT, int local, int valid,
                       int start) {
  for (int i = 0; i < BT; i++) {
    const float* p = probs + static_cast<size_t>(i) * local;
    float* d = dlogits + static_cast<size_t>(i) * local;
    for (int j = 0; j < valid; j++) d[j] = p[j] * scale;
    for (int j = valid; j < local; j++) d[j] = 0.0f;
    if (held(targets[i], start, valid)) d[targets[i] - start] -= scale;
  }
}

}  // namespace weft::kernels::cpu
