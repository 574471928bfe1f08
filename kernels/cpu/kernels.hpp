// The fp32 CPU reference kernels: plain loops, OpenMP where it pays. Each op family has its own
// .cpp (matmul, rmsnorm, rope, attention, swiglu, moe_routing, cross_entropy, embedding) and the
// CUDA kernels (kernels/cuda) mirror these names and are tested against them.
//
// The one convention to know: every backward ACCUMULATES (+=) into the gradients it produces,
// parameter gradients and activation gradients alike (as in llm.c's train_gpt2.c). Parameter
// gradients accumulate across micro-batches until the caller zeroes them; activation gradient
// buffers are zeroed by the caller before the backward pass, and a tensor that feeds several ops
// then simply collects the sum of their gradients.
//
// Shapes are row-major; N is the number of token positions (B*T).
#pragma once

#include <cstdint>
#include <vector>

namespace dsk::kernels::cpu {

// ---- matmul.cpp: out = inp @ weight^T + bias (a Linear layer, weight stored [OC, C] as HF does)
// inp [N,C], weight [OC,C], bias [OC] or null, out [N,OC].
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
// dinp [N,C] (may be null), dweight [OC,C] (null: frozen), dbias [OC] or null; dout [N,OC].
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC);

// ---- rmsnorm.cpp: out = weight * inp / sqrt(mean(inp^2) + eps) over the last dim
// inp, out [N,C]; weight [C]; rstd [N] is kept for backward.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);

// ---- rope.cpp: rotary position embedding applied in place to the first rot_dim of each head
// x [N, H, head_stride] (the rotated part starts at column `offset` of each head), positions [N],
// inv_freq [rot_dim/2]. Angle of pair i at position p: p * inv_freq[i]; cos and sin are scaled
// by attention_factor (HF's rope scaling). interleaved = false pairs (i, i + rot_dim/2) (llama's
// rotate_half); true pairs (2i, 2i+1) (DeepSeek's rope_interleave; the dot products q.k are the
// same as HF's de-interleaving since q and k are permuted alike).
struct Rope {
  std::vector<float> inv_freq;
  float attention_factor = 1.0f;
  bool interleaved = false;
};
void rope_forward(float* x, const int32_t* positions, const Rope& rope, int N, int H, int head_stride,
                  int offset, int rot_dim);
// dx holds d(out) on entry and d(in) on exit (the rotation is applied transposed, in place).
void rope_backward(float* dx, const int32_t* positions, const Rope& rope, int N, int H, int head_stride,
                   int offset, int rot_dim);

// ---- attention.cpp: causal multi-head attention with grouped K/V heads (GQA; MQA; MHA)
// q [B,Tq,H,Dk], k [B,Tk,KVH,Dk], v [B,Tk,KVH,Dv] (row strides q_stride, k_stride, v_stride
// floats per position), out [B,Tq,H,Dv], probs [B,H,Tq,Tk] kept for backward. The Tq queries
// are the last Tq of the Tk positions (Tq == Tk in training, Tq < Tk with a KV cache).
struct AttentionShape {
  int B, Tq, Tk, H, KVH, Dk, Dv;
  int q_stride, k_stride, v_stride;  // floats between consecutive positions
  float scale;
};
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const AttentionShape& s);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs, const float* q,
                        const float* k, const float* v, const AttentionShape& s);

// ---- swiglu.cpp: out = silu(gate) * up, elementwise over n values
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

// ---- embedding.cpp: out[n] = table[tokens[n]]; table [V,C], out [N,C]
void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C);

// ---- cross_entropy.cpp: softmax cross-entropy, mean over targets != ignore_index
// logits [N,V] -> probs [N,V] (kept), returns the mean loss; count = number of counted targets.
float cross_entropy_forward(float* probs, const float* logits, const int32_t* targets, int N, int V,
                            int ignore_index, int* count);
// dlogits [N,V] += dloss * (probs - onehot(target)) / count on counted rows.
void cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, int N, int V,
                            int ignore_index, int count, float dloss);

// ---- moe_routing.cpp: DeepSeek-V3 router (sigmoid scores, bias for selection only, group-limited
// top-k, optional renormalisation, routed scaling)
struct RouterConfig {
  int n_experts, top_k, n_group, topk_group;
  bool norm_topk_prob;
  float routed_scaling_factor;
};
// logits [N,E] (= x @ gate^T), bias [E]; out: scores [N,E] (sigmoid, kept), experts [N,top_k],
// weights [N,top_k].
void moe_route_forward(float* scores, int32_t* experts, float* weights, const float* logits, const float* bias,
                       const RouterConfig& r, int N);
// dweights [N,top_k] -> dlogits [N,E] (+=) through the selected sigmoid scores (selection is discrete).
void moe_route_backward(float* dlogits, const float* dweights, const float* scores, const int32_t* experts,
                        const RouterConfig& r, int N);

}  // namespace dsk::kernels::cpu
