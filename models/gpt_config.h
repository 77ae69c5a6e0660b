#pragma once
// GPT-2-style decoder: its shape. Where each parameter lives, on a rank that holds all or part
// of the model, is models/gpt_layout.h.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weft::models {

struct GptConfig {
  int layers = 4;
  int d_model = 256;
  int heads = 4;
  int seq = 128;       // maximum sequence length (rows of wpe)
  int vocab = 256;     // byte-level tokens
  int padded_vocab = 256;  // rows of wte (>= vocab; extra rows never win the softmax)

  // Throws InvalidArgument naming the flag when a value is out of range or heads does not
  // divide d_model.
  void validate() const;
  // Training FLOPs per token: 6 x (matmul weights, including the tied LM head) + the causal
  // attention's QK^T and AV products, forward and backward (6 x layers x seq x d_model: the
  // masked upper triangle is never computed, so it is not counted).
  double flops_per_token() const;
  // The parameter count of the whole model, in double so that a shape too big to lay out or
  // allocate is still measured, and said to be too big before anything is allocated.
  double parameters() const;
};

}  // namespace weft::models
