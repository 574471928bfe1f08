// The rotation of one RoPE pair, shared by rope.cu (training, prefill) and rope_kv_write.cu (a
// decode step's fused RoPE and KV-cache write), so that both give every element the same bits.
// kernels/cpu/rope.cpp is the spec.
#pragma once

#include "cuda/elementwise.cuh"

namespace dsk::kernels::cuda {

// Pair i of a head: its two columns and the rotation's cos and sin at a position.
struct RopePair {
  int ia, ib;  // rope_columns
  float cos_a, sin_a;
};

// The columns of pair i: (i, i + half) for rotate_half, (2i, 2i + 1) interleaved.
__device__ __forceinline__ int2 rope_columns(const RopeDevice& rope, int i, int half) {
  return rope.interleaved ? make_int2(2 * i, 2 * i + 1) : make_int2(i, i + half);
}

// sign = -1 gives the transpose (the backward).
__device__ __forceinline__ RopePair rope_pair(const RopeDevice& rope, int position, int i, int half, float sign) {
  float sin_a, cos_a;
  sincosf((float)position * rope.inv_freq[i], &sin_a, &cos_a);
  const int2 columns = rope_columns(rope, i, half);
  return {columns.x, columns.y, cos_a * rope.attention_factor, sign * sin_a * rope.attention_factor};
}

// (a, b) rotated: the new values of columns ia and ib.
__device__ __forceinline__ float2 rotate_pair(const RopePair& p, float a, float b) {
  return make_float2(a * p.cos_a - b * p.sin_a, a * p.sin_a + b * p.cos_a);
}

}  // namespace dsk::kernels::cuda
