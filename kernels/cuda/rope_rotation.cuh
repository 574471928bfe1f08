// RoPE's rotation of one pair of columns, shared by rope.cu (training, prefill) and
// rope_kv_write.cu (a decode step's fused RoPE and KV write), which must give the same bits
// (tests/gpu/rope_kv_write_test.cu). The products and sums are spelled out with explicit rounding
// (__fmul_rn, __fmaf_rn) so that each kernel it is inlined into computes them alike: left to
// nvcc, a * c - b * s may be contracted into either of two fused multiply-adds.
#pragma once

#include "cuda/elementwise.cuh"

namespace dsk::kernels::cuda {

// The columns of pair i of a head: (i, i + half) for rotate_half, (2i, 2i + 1) interleaved.
struct PairColumns {
  int ia, ib;
};
__device__ __forceinline__ PairColumns pair_columns(const RopeDevice& rope, int i, int half) {
  return {rope.interleaved ? 2 * i : i, rope.interleaved ? 2 * i + 1 : i + half};
}

// Pair i of a head: its columns and its angle's cos and sin at one position, times the attention
// factor; sign -1 gives the transpose (the backward).
struct PairRotation {
  int ia, ib;
  float cos, sin;
};

__device__ __forceinline__ PairRotation pair_rotation(const RopeDevice& rope, int position, int i, int half,
                                                      float sign) {
  float sin_a, cos_a;
  sincosf(float(position) * rope.inv_freq[i], &sin_a, &cos_a);
  const PairColumns columns = pair_columns(rope, i, half);
  return {columns.ia, columns.ib, cos_a * rope.attention_factor, sign * sin_a * rope.attention_factor};
}

// (a cos - b sin, a sin + b cos).
__device__ __forceinline__ float2 rotate_pair(float a, float b, const PairRotation& r) {
  return make_float2(__fmaf_rn(a, r.cos, -__fmul_rn(b, r.sin)), __fmaf_rn(a, r.sin, __fmul_rn(b, r.cos)));
}

}  // namespace dsk::kernels::cuda
