#pragma once
// Causal multi-head self-attention, GPT-2 layout. qkv[B, T, 3C] holds, per position, the query
// (channels [0, C)), key ([C, 2C)) and value ([2C, 3C)); each is NH heads of hs = C / NH
// channels. For head h: out = softmax(mask(Q K^T / sqrt(hs))) V, position t seeing 0..t.
// The products are sgemm calls on strided views of qkv (no copies), computed only for the
// lower-triangular blocks the causal mask keeps.
namespace weft::kernels::cpu {

// out[B, T, C] (heads side by side, ready for the output projection) and
// att[B, NH, T, T]: the softmax probabilities, saved for backward; entries above the diagonal
// are written as 0. C must be divisible by NH.
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);

// dqkv[B, T, 3C] += gradient through the attention, given dout[B, T, C] and the forward's qkv
// and att. datt[B, NH, T, T] is scratch for the gradient w.r.t. the attention scores: its
// contents on entry and exit mean nothing, so one buffer can serve every layer.
void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH);

// Threads: both calls spread the B x NH (batch, head) pairs over up to blas_threads() threads
// (see kernels/matmul.h; fewer for small shapes), each running its heads' sgemms
// single-threaded. The BLAS thread count is lowered to 1 during the call and restored after,
// so no other thread should call the BLAS meanwhile.

}  // namespace weft::kernels::cpu
