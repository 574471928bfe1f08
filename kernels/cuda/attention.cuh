// Causal attention, flash-style: the [Tq, Tk] scores never exist in memory. Same shapes and
// semantics as cpu::attention_forward/backward (GQA: query head h reads K/V head h / (H/KVH);
// the Tq queries are the last Tq of the Tk positions; rows of q, k, v are q_stride, k_stride,
// v_stride elements apart), but instead of the probabilities the forward keeps the log-sum-exp of
// each query's scaled scores, lse [B, H, Tq] (fp32), from which backward recomputes them.
// Head dims Dk, Dv: any multiple of 8 up to 256 (MLA has Dk != Dv). Other shapes (or Tq > Tk, H not
// a multiple of KVH, strides narrower than the heads) throw InternalError naming the shape.
//
// bf16 runs on tensor cores when every tensor is 16-byte aligned and every row stride a multiple
// of 8 elements; otherwise, and for float (the precision: fp32 mode), on plain fp32 SIMT kernels.
// Both keep fp32 softmax statistics and are deterministic (no atomics).
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

using AttentionShape = cpu::AttentionShape;

// out [B, Tq, H, Dv] (written, not accumulated), lse [B, H, Tq].
template <typename T>
void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const AttentionShape& s,
                       cudaStream_t stream);

// dq, dk, dv (same layouts and strides as q, k, v) +=. Deterministic: dk/dv are owned by one block
// per key tile (query heads of a group in order), dq by one block per query tile, or summed by the
// key-tile blocks in key-tile order (attention.cu's TileChoice); no float atomics.
// scratch holds attention_backward_scratch_floats(s) floats (rowsum(dout * out) [B,H,Tq], and for
// a one-pass choice an fp32 dQ accumulator [B,H,Tq,Dk padded]).
size_t attention_backward_scratch_floats(const AttentionShape& s);
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& s, float* scratch, cudaStream_t stream);

}  // namespace dsk::kernels::cuda
