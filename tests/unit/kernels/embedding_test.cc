#include "kernels/embedding.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "runtime/error.h"
#include "tests/unit/kernels/gradient_check.h"

namespace weft::kernels::cpu {
namespace {

const CpuContext kCpu(1);  // these tests check values, which no thread count changes

using testing::central_differences;
using testing::expect_gradient_near;
using testing::project;
using testing::random_vector;
using testing::sample_indices;

TEST(Embedding, ForwardAddsTokenAndPositionRows) {
  // V = 3, C = 2, T = 2, B = 2. wte rows: 10*token + {0, 1}; wpe rows: 100*(t+1) + {0, 1}.
  const float wte[] = {0, 1, 10, 11, 20, 21};
  const float wpe[] = {100, 101, 200, 201, 300, 301};  // T_max = 3 > T: only rows 0, 1 used
  const int32_t tokens[] = {2, 0, 1, 1};
  float out[8];
  embedding_forward(kCpu, out, tokens, wte, wpe, 2, 2, 2, 3);
  const float want[] = {120, 122, 200, 202, 110, 112, 210, 212};
  for (int i = 0; i < 8; i++) EXPECT_EQ(out[i], want[i]) << i;
}

// Linear in wte and wpe, so central differences with h = 1e-2 are exact up to f32 rounding
// (tolerance 1e-4 + 1e-4 rel). Tokens repeat (V = 4 for 12 positions), so rows of dwte gather
// several contributions, and unused rows must stay as they were.
TEST(Embedding, BackwardAccumulatesFiniteDifferenceGradients) {
  std::mt19937 rng(51);
  const int B = 3, T = 4, C = 5, V = 6;
  std::vector<int32_t> tokens(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 4);  // tokens 4, 5 never appear
  auto wte = random_vector(V * C, rng);
  auto wpe = random_vector(T * C, rng);
  auto w = random_vector(B * T * C, rng);
  std::vector<float> out(w.size());
  auto loss = [&] {
    embedding_forward(kCpu, out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C, V);
    return project(out, w);
  };
  const auto dwte0 = random_vector(wte.size(), rng);
  const auto dwpe0 = random_vector(wpe.size(), rng);
  auto dwte = dwte0, dwpe = dwpe0;
  embedding_backward(kCpu, dwte.data(), dwpe.data(), w.data(), tokens.data(), B, T, C, V);
  auto ti = sample_indices(wte.size(), wte.size(), rng);
  expect_gradient_near(dwte, dwte0, ti, central_differences(wte, ti, 1e-2f, loss), 1e-4, 1e-4,
                       "dwte");
  auto pi = sample_indices(wpe.size(), wpe.size(), rng);
  expect_gradient_near(dwpe, dwpe0, pi, central_differences(wpe, pi, 1e-2f, loss), 1e-4, 1e-4,
                       "dwpe");
  for (int i = 4 * C; i < V * C; i++) EXPECT_EQ(dwte[i], dwte0[i]) << "unused token row";
}

TEST(Embedding, TokenOutsideVocabularyIsInvalidArgument) {
  const std::vector<float> wte(4 * 2, 0.0f), wpe(2 * 2, 0.0f);
  std::vector<float> out(4), dwte(wte.size()), dwpe(wpe.size());
  for (int32_t bad : {-1, 4, 256}) {
    const int32_t tokens[] = {0, bad};
    try {
      embedding_forward(kCpu, out.data(), tokens, wte.data(), wpe.data(), 1, 2, 2, 4);
      FAIL() << "token " << bad << " should be rejected";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("position 1"), std::string::npos) << e.what();
    }
    EXPECT_THROW(embedding_backward(kCpu, dwte.data(), dwpe.data(), out.data(), tokens, 1, 2, 2, 4),
                 Error);
  }
}

}  // namespace
}  // namespace weft::kernels::cpu
