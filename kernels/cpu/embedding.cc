#include "kernels/embedding.h"

#include <cstddef>
#include <string>

#include "kernels/cpu/vector_math.h"
#include "runtime/error.h"

namespace weft::kernels::cpu {
namespace {

void check_tokens(const int32_t* tokens, int count, int V, const char* op) {
  for (int i = 0; i < count; i++) {
    if (tokens[i] < 0 || tokens[i] >= V) {
      throw Error(ErrorCode::InvalidArgument,
                  std::string(op) + ": token " + std::to_string(tokens[i]) + " at position " +
                      std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(V) +
                      "); check the data's tokenizer against the model's vocabulary size");
    }
  }
}

WEFT_KERNEL_PER_ISA void add_rows(float* out, const int32_t* tokens, const float* wte,
                                  const float* wpe, int B, int T, int C) {
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      const size_t bt = static_cast<size_t>(b) * T + t;
      float* o = out + bt * C;
      const float* token_row = wte + static_cast<size_t>(tokens[bt]) * C;
      const float* position_row = wpe + static_cast<size_t>(t) * C;
      for (int c = 0; c < C; c++) o[c] = token_row[c] + position_row[c];
    }
  }
}

WEFT_KERNEL_PER_ISA void scatter_rows(float* dwte, float* dwpe, const float* dout,
                                      const int32_t* tokens, int B, int T, int C) {
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      const size_t bt = static_cast<size_t>(b) * T + t;
      const float* d = dout + bt * C;
      float* token_row = dwte + static_cast<size_t>(tokens[bt]) * C;
      float* position_row = dwpe + static_cast<size_t>(t) * C;
      for (int c = 0; c < C; c++) token_row[c] += d[c];
      for (int c = 0; c < C; c++) position_row[c] += d[c];
    }
  }
}

}  // namespace

void embedding_forward(const CpuContext&, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C, int V) {
  check_tokens(tokens, B * T, V, "embedding_forward");
  add_rows(out, tokens, wte, wpe, B, T, C);
}

void embedding_backward(const CpuContext&, float* dwte, float* dwpe, const float* dout,
                        const int32_t* tokens, int B, int T, int C, int V) {
  check_tokens(tokens, B * T, V, "embedding_backward");
  scatter_rows(dwte, dwpe, dout, tokens, B, T, C);
}

}  // namespace weft::kernels::cpu
