#pragma once
// Causal multi-head self-attention, GPT-2 layout. qkv[B, T, 3C] holds, per position, the query
// (channels [0, C)), key ([C, 2C)) and value ([2C, 3C)); each is NH heads of hs = C / NH
// channels. For head h: out = softmax(mask(Q K^T / sqrt(hs))) V, position t seeing 0..t.
// The products are sgemm calls on strided views of qkv (no copies), computed only for the
// lower-triangular blocks the causal mask keeps.
#include "kernels/context.h"

namespace weft::kernels::cpu {

// out[B, T, C] (heads side by side, ready for the output projection) and
// att[B, NH, T, T]: the softmax probabilities, saved for backward; entries above the diagonal
// are written as 0. C must be divisible by NH.
void attention_forward(const CpuContext& ctx, float* out, float* att, const float* qkv, int B,
                       int T, int C, int NH);

// dqkv[B, T, 3C] += gradient through the attention, given dout[B, T, C] and the forward's qkv
// and att. datt[B, NH, T, T] is scratch for the gradient w.r.t. the attention scores: its
// contents on entry and exit mean nothing, so one buffer can serve every layer.
void attention_backward(const CpuContext& ctx, float* dqkv, float* datt, const float* dout,
                        const float* qkv, const float* att, int B, int T, int C, int NH);

// Threads: both calls spread the B x NH (batch, head) pairs over up to ctx.threads() threads
// (fewer for small shapes), each running its heads' sgemms single-threaded: the call holds a
// BlasThreads guard at 1 (kernels/context.h), so no other thread should call the BLAS at
// another thread count meanwhile.

}  // namespace weft::kernels::cpu
