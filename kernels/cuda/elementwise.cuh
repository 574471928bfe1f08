// Small memory-bound ops, each the CUDA twin of a kernels/cpu function of the same name
// (see that header for the math): RMSNorm, RoPE, SwiGLU, embedding, residual add, casts, MLA's
// split/expand of the kv_b projection, and the KV-cache append. T is float or bf16 (common.cuh).
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

// ---- rmsnorm.cu. inp, out [N,C]; weight [C]; rstd [N] (fp32, kept for backward).
template <typename T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* weight, int N, int C, float eps, cudaStream_t stream);
// dinp [N,C] +=; dweight [C] += (fp32; deterministic: per-block partial sums in `scratch`, then a
// fixed-order sum). scratch holds rmsnorm_backward_scratch_floats(N, C) floats.
size_t rmsnorm_backward_scratch_floats(int N, int C);
template <typename T>
void rmsnorm_backward(T* dinp, float* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                      int N, int C, float* scratch, cudaStream_t stream);

// ---- rope.cu. In place on x [N, H, head_stride], columns [offset, offset + rot_dim) of each head.
// inv_freq: device copy of cpu::Rope::inv_freq [rot_dim/2]; attention_factor and interleaved as
// in cpu::Rope. backward rotates by the negative angle (dx holds d(out) in, d(in) out).
struct RopeDevice {
  const float* inv_freq = nullptr;  // device [rot_dim/2]
  float attention_factor = 1.0f;
  bool interleaved = false;
};
template <typename T>
void rope_forward(T* x, const int32_t* positions, const RopeDevice& rope, int N, int H, int head_stride, int offset,
                  int rot_dim, cudaStream_t stream);
template <typename T>
void rope_backward(T* dx, const int32_t* positions, const RopeDevice& rope, int N, int H, int head_stride,
                   int offset, int rot_dim, cudaStream_t stream);

// ---- swiglu.cu. out = silu(gate) * up over n values; backward +=.
template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n, cudaStream_t stream);
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n, cudaStream_t stream);

// ---- tanh.cu. out = tanh(in) over n values; backward din += dout * (1 - out^2).
template <typename T>
void tanh_forward(T* out, const T* in, int64_t n, cudaStream_t stream);
template <typename T>
void tanh_backward(T* din, const T* dout, const T* out, int64_t n, cudaStream_t stream);

// ---- embedding.cu. out[n] = table[tokens[n]]; table [V,C] (T), out [N,C].
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int C, cudaStream_t stream);
// dtable [V,C] (fp32) += dout rows, deterministic: positions are grouped by token id (a stable
// counting sort into `scratch`) and each token's rows are summed in position order.
size_t embedding_backward_scratch_bytes(int N, int V);
template <typename T>
void embedding_backward(float* dtable, const T* dout, const int32_t* tokens, int N, int C, int V, void* scratch,
                        cudaStream_t stream);

// ---- elementwise.cu
// out = a + b over n values (the residual stream); out may alias a or b.
template <typename T>
void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream);
// out += a over n values (activation-gradient accumulation).
template <typename T>
void accumulate(T* out, const T* a, int64_t n, cudaStream_t stream);
// Conversions for the master weights (fp32) and the working copy (T), and for reading results.
template <typename T>
void cast_from_float(T* out, const float* in, int64_t n, cudaStream_t stream);
template <typename T>
void cast_to_float(float* out, const T* in, int64_t n, cudaStream_t stream);
// Strided row copy: out[n, out_offset + j] = in[n, in_offset + j] for j < width, for N rows of
// in_stride / out_stride elements (MLA's latent split, gathering a KV cache, packing rows).
// accumulate = true adds instead (the backward of a split).
template <typename T>
void copy_columns(T* out, int out_stride, int out_offset, const T* in, int in_stride, int in_offset, int N,
                  int width, bool accumulate, cudaStream_t stream);

// ---- mla.cu. DeepSeek MLA: per-head keys and values from kv_b = kv_b_proj(norm(latent)) [N, H, nope+Dv]
// and the shared rope key kv_a[:, kv_rank:kv_rank+R] (kv_a [N, kv_rank + R]):
//   k[n,h] = [kv_b[n,h,:nope], kv_a[n,kv_rank:]]  (k [N, H, nope+R]),  v[n,h] = kv_b[n,h,nope:]  (v [N, H, Dv]).
template <typename T>
void mla_expand_forward(T* k, T* v, const T* kv_b, const T* kv_a, int N, int H, int nope, int R, int Dv, int kv_rank,
                        cudaStream_t stream);
// dkv_b [N,H,nope+Dv] += (dk nope part, dv); dkv_a[:, kv_rank:] += sum over heads of dk's rope part
// (heads summed in order: deterministic).
template <typename T>
void mla_expand_backward(T* dkv_b, T* dkv_a, const T* dk, const T* dv, int N, int H, int nope, int R, int Dv,
                         int kv_rank, cudaStream_t stream);

// ---- kv_cache.cu. Appends T_new positions of B sequences to a cache laid out
// [B, max_length, row] at position `length`: cache[b, length + t] = rows[b*T_new + t].
template <typename T>
void kv_cache_append(T* cache, const T* rows, int B, int T_new, int max_length, int length, int row,
                     cudaStream_t stream);

// ---- dropout.cu. Scaled dropout over n values with cpu::dropout_keeps's mask (the same bits):
// out = keep ? in * factor : 0; backward din += keep ? dout * factor : 0.
template <typename T>
void dropout_forward(T* out, const T* in, int64_t n, float factor, uint32_t threshold, uint64_t seed,
                     cudaStream_t stream);
template <typename T>
void dropout_backward(T* din, const T* dout, int64_t n, float factor, uint32_t threshold, uint64_t seed,
                      cudaStream_t stream);

}  // namespace dsk::kernels::cuda
