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
//
// Packed rows (segment_start, i32 [B,Tq], in the backend's memory; null: plain causal): a row
// holds several examples one after the other and attention stays within each. segment_start[b,t]
// is the query position (0..t, counted in the query part) where query t's example begins, so
// query t (absolute position p = Tk - Tq + t) sees the keys [Tk - Tq + segment_start[b,t], p]
// and, always, the keys before the query part, [0, Tk - Tq) (a KV cache's past or prefix
// tuning's learned keys, which every example shares). Each example occupies consecutive
// positions, so segment_start is non-decreasing along t and segment_start[b,t] <= t; the CUDA
// kernels rely on it to skip the key tiles before a query tile's first example.
struct AttentionShape {
  int B, Tq, Tk, H, KVH, Dk, Dv;
  int q_stride, k_stride, v_stride;  // floats between consecutive positions
  float scale;
  const int32_t* segment_start = nullptr;
};
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const AttentionShape& s);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs, const float* q,
                        const float* k, const float* v, const AttentionShape& s);

// ---- swiglu.cpp: out = silu(gate) * up, elementwise over n values
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

// ---- tanh.cpp: out = tanh(in) over n values; backward din += dout * (1 - out^2) (from the output)
void tanh_forward(float* out, const float* in, int64_t n);
void tanh_backward(float* din, const float* dout, const float* out, int64_t n);

// ---- embedding.cpp: out[n] = table[tokens[n]]; table [V,C], out [N,C]
void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C);

// ---- cross_entropy.cpp: softmax cross-entropy of a chunk of LM-head rows, in place
// logits [rows,V]. losses[r] = logsumexp(logits[r]) - logits[r, targets[r]] for counted rows (0 on
// rows whose target is ignore_index). When dscale != 0 the logits are overwritten with
// dlogits = dscale * (softmax - onehot(target)) (0 on ignored rows): the gradient of
// dscale * sum(losses). The fused LM head (lib/tensor) calls this a chunk of rows at a time.
void cross_entropy_rows(float* losses, float* logits, const int32_t* targets, int rows, int V, int ignore_index,
                        float dscale);

// ---- elementwise.cpp
// out = a + b over n values (out may alias a or b); out += a.
void add(float* out, const float* a, const float* b, int64_t n);
void accumulate(float* out, const float* a, int64_t n);
// out[n, out_offset + j] (=, or += when accumulate) in[n, in_offset + j] for j < width, n < N;
// rows are out_stride / in_stride floats apart.
void copy_columns(float* out, int out_stride, int out_offset, const float* in, int in_stride, int in_offset, int N,
                  int width, bool accumulate);

// ---- mla.cpp: DeepSeek MLA's per-head keys and values from kv_b [N, H, nope+Dv] and the shared
// rope key kv_a[:, kv_rank : kv_rank+R] (kv_a [N, kv_rank+R]):
//   k[n,h] = [kv_b[n,h,:nope], kv_a[n,kv_rank:]]   (k [N,H,nope+R]),   v[n,h] = kv_b[n,h,nope:]   (v [N,H,Dv])
void mla_expand_forward(float* k, float* v, const float* kv_b, const float* kv_a, int N, int H, int nope, int R, int Dv,
                        int kv_rank);
// dkv_b += (dk's nope part, dv); dkv_a[:, kv_rank:] += dk's rope part summed over heads in order.
void mla_expand_backward(float* dkv_b, float* dkv_a, const float* dk, const float* dv, int N, int H, int nope, int R,
                         int Dv, int kv_rank);

// ---- kv_cache.cpp: a cache [B, max_length, row] holding `length` positions per sequence.
// append: cache[b, length + t] = rows[b*T_new + t]. gather: out[b, t] = cache[b, t] for t < Tk.
void kv_cache_append(float* cache, const float* rows, int B, int T_new, int max_length, int length, int row);
void kv_cache_gather(float* out, const float* cache, int B, int Tk, int max_length, int row);

// ---- paged_attention.cpp: serving's paged KV cache. A pool holds `slots` rows of `stride`
// floats (slot = block * block_size + offset in the block); a sequence's block table lists its
// blocks in position order, so its key j sits at slot table[j / block_size] * block_size +
// j % block_size. Write: pool[slots[n]] = rows[n] (row floats each; rows [N, row]).
void paged_kv_write(float* pool, const float* rows, const int32_t* slots, int N, int row, int stride);
// Attention of N query tokens of a ragged batch: query n belongs to sequence sequence[n], sits
// at position positions[n] and sees its sequence's keys 0..positions[n] (written before the call).
// q [N, q_stride] (head h at h*Dk), out [N, H, Dv]; keys of K/V head g at slot*k_stride + g*Dk
// and values at slot*v_stride + g*Dv of their pools; query head h reads K/V head h / (H/KVH).
// block_tables [sequences, max_blocks] i32. MLA's absorbed form passes the latent pool as both
// k and v (KVH 1, Dv = kv_lora_rank: the value is the key row's first Dv columns).
struct PagedAttentionShape {
  int N, H, KVH, Dk, Dv;
  int q_stride, k_stride, v_stride;
  int block_size, max_blocks;
  float scale;
  int max_keys;  // the most keys any query sees (max positions + 1): how a GPU splits the work
};
void paged_attention_forward(float* out, const float* q, const float* k_pool, const float* v_pool,
                             const int32_t* block_tables, const int32_t* sequence, const int32_t* positions,
                             const PagedAttentionShape& s);

// ---- sampling.cpp: the next token of each row of logits [rows, V] without the logits leaving
// the device. temperatures[r] <= 0 (or temperatures null): ids[r] = the first index of the row's
// largest logit (std::max_element's pick, greedy decoding). temperatures[r] > 0: a sample of
// softmax(logits / T) by the Gumbel-max trick, ids[r] = argmax_i logits_i / T - log(-log(u_i)),
// u_i = noise_uniform(seeds[r], i) (sampling_noise.hpp): the same ids on every backend.
void sample_rows(int32_t* ids, const float* logits, const float* temperatures, const uint64_t* seeds, int rows, int V);

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


// ---- moe_dispatch.cpp: the (token, slot) pairs of a routed batch grouped by expert
// experts [N,K] -> offsets [E+1] (expert e owns permuted rows offsets[e]..offsets[e+1]),
// order [N*K] (permuted row i holds pair order[i], pairs ascending within an expert),
// row_of [N*K] (pair p sits at permuted row row_of[p]); load [E] += the counts.
void moe_permute(int32_t* offsets, int32_t* order, int32_t* row_of, int64_t* load, const int32_t* experts, int N,
                 int K, int E);
// xp [N*K, C]: xp[i] = x[order[i] / K]; backward: dx[n] += sum over slots k of dxp[row_of[n*K+k]].
void moe_gather(float* xp, const float* x, const int32_t* order, int N, int K, int C);
void moe_gather_backward(float* dx, const float* dxp, const int32_t* row_of, int N, int K, int C);
// out[n] += sum over slots k of weights[n,k] * yp[row_of[n*K+k]].
void moe_combine_forward(float* out, const float* yp, const float* weights, const int32_t* row_of, int N, int K, int C);
// dyp[row_of[p]] = weights[p] * dout[p/K]; dweights[p] = dot(dout[p/K], yp[row_of[p]]) (both written).
void moe_combine_backward(float* dyp, float* dweights, const float* dout, const float* yp, const float* weights,
                          const int32_t* row_of, int N, int K, int C);
// Aux-loss-free balancing of one layer: bias[e] += speed * sign(mean(load) - load[e]).
void moe_update_bias(float* bias, const int64_t* load, int E, float speed);
// DeepSeek-V3's sequence-wise balance loss (eq. 17-20) averaged over B sequences of T tokens:
// alpha/B * sum_b sum_e f_be P_be, f_be = E/(K*T) * (tokens of b routed to e), P_be = mean over the
// sequence of s_e / sum_j s_j (s = the sigmoid scores [N,E]). Returns it and, when dlogits is not
// null, adds its gradient through the sigmoid into dlogits [N,E].
float moe_sequence_aux_loss(float* dlogits, const float* scores, const int32_t* experts, int B, int T, int E, int K,
                            float alpha);

// ---- adamw.cpp: one AdamW update over n fp32 parameters (lib/train's optimizer, the reference
// of the fused CUDA step). bias corrections 1 - beta^t in double, as computed by the caller.
struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;
};
// decay_mask null: decay everything.
void adamw_step(float* params, const float* grads, float* m, float* v, const uint8_t* decay_mask, int64_t n,
                const AdamWStep& step);
// sum of grads[i]^2 in double.
double sum_of_squares(const float* values, int64_t n);
void scale(float* values, float factor, int64_t n);

// ---- dropout.cpp: scaled dropout, out[i] = keep(seed, i) ? in[i] * factor : 0 (LoRA's dropout
// with its scaling folded in: factor = scale / (1 - p)); backward din[i] += the same of dout[i].
// The mask is a pure function of (seed, i): splitmix64's finalizer of seed + i * golden ratio,
// whose high 32 bits keep the element when >= threshold = p * 2^32 (dropout_threshold). The CUDA
// twin (kernels/cuda/dropout.cu) computes the very same bits.
inline uint32_t dropout_threshold(float p) {
  const double scaled = double(p) * 4294967296.0;
  return scaled <= 0 ? 0u : scaled >= 4294967295.0 ? 4294967295u : uint32_t(scaled);
}
inline bool dropout_keeps(uint64_t seed, uint64_t i, uint32_t threshold) {
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return threshold == 0 || uint32_t(z >> 32) >= threshold;
}
void dropout_forward(float* out, const float* in, int64_t n, float factor, uint32_t threshold, uint64_t seed);
void dropout_backward(float* din, const float* dout, int64_t n, float factor, uint32_t threshold, uint64_t seed);

// ---- grad_quantize.cpp: int8 gradient compression for data parallelism (dist.grad_dtype int8).
// Per chunk of `chunk` values v = values + residual (residual may be null): scale = max|v| / 127,
// q = v / scale rounded to nearest (ties to even), in [-127, 127]; scale 0 and q 0 for a chunk
// of zeros. Error feedback (residual not null): residual = v - q * scale, what q missed, to be
// added to the next step's values. A chunk holding a NaN or Inf gets scale NaN (so its sum is
// NaN and the step is skipped), q 0 and residual 0 (so the next step starts clean).
// The CUDA twin (kernels/cuda/grad_quantize.cu) rounds every operation alike: the same bits.
inline int64_t quantize_chunks(int64_t n, int chunk) { return (n + chunk - 1) / chunk; }
void quantize_int8(int8_t* q, float* scales, const float* values, float* residual, int64_t n, int chunk);
// out[i] = the sum over r = 0, 1, ..., ranks - 1 in that order of q[r * n + i] * scales[r * chunks
// + i / chunk] (chunks = quantize_chunks(n, chunk)): every rank gets the same bits.
void dequantize_sum_int8(float* out, const int8_t* q, const float* scales, int64_t n, int ranks, int chunk);

}  // namespace dsk::kernels::cpu
