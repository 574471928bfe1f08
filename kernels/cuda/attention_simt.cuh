// The plain (SIMT, fp32 arithmetic, no tensor cores) path of causal attention: the precision path
// for T = float, and the fallback for bf16 tensors the tensor-core path cannot load (pointers not
// 16-byte aligned or row strides not a multiple of 8). Same algorithm as attention_flash.cuh:
// forward with an online softmax keeping lse, backward recomputing P from lse, dK/dV owned by
// one block per key tile and dQ by one block per query tile. Any head dim multiple of 8 up to 256.
// Included only by attention.cu.
//
// Blocks have 8 warps. Score tiles are 16 queries x 32 keys: in forward and dQ each warp owns two
// query rows and lane j takes key j of the tile; in dK/dV lane j owns key j and warp w the
// columns w, w + 8, ... of its dK and dV rows. Packed rows (s.segment_start): a mask bound per
// query, and the key tiles (query tiles in dK/dV) that no query of the block sees are skipped
// (attention_segments.cuh).
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/attention_segments.cuh"
#include "cuda/common.cuh"

namespace dsk::kernels::cuda::simt {

using AttentionShape = cpu::AttentionShape;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kQueries = 16;                    // per block in forward and dQ, per step in dK/dV
constexpr int kRowsPerWarp = kQueries / kWarps;  // 2
constexpr int kKeys = 32;                       // per key tile: one per lane
constexpr int kMaxHeadDim = 256;
constexpr int kColumnsPerLane = kMaxHeadDim / 32;  // a row of up to 256 spread over a warp
constexpr int kColumnsPerWarp = kMaxHeadDim / kWarps;  // dK/dV: columns w + 8 i

__device__ __forceinline__ float warp_max(float x) {
  for (int width = 16; width > 0; width /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, width));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
  for (int width = 16; width > 0; width /= 2) x += __shfl_xor_sync(0xffffffffu, x, width);
  return x;
}

// Rows [0, rows) x columns [0, D) of a T tensor (row r at source + r * stride) as floats into
// destination (pitch `pitch`); rows >= valid_rows become zeros.
template <typename T>
__device__ __forceinline__ void load_rows(float* destination, int pitch, const T* source, int64_t stride, int rows,
                                          int valid_rows, int D) {
  for (int i = int(threadIdx.x); i < rows * D; i += kThreads) {
    const int row = i / D, column = i % D;
    destination[row * pitch + column] = row < valid_rows ? to_float(source[row * stride + column]) : 0.0f;
  }
}

__device__ __forceinline__ float dot(const float* a, const float* b, int D) {
  float sum = 0.0f;
#pragma unroll 8
  for (int d = 0; d < D; d++) sum += a[d] * b[d];
  return sum;
}

template <typename T>
__device__ __forceinline__ void accumulate(T* pointer, float x) {
  *pointer = from_float<T>(to_float(*pointer) + x);
}

// One row of a warp's output: lane holds columns lane + 32 c < D. row[c] = row[c] * rescale +
// sum over the tile's 32 keys j of weights[j] * tile[j * pitch + column] (the P V or dS K product).
__device__ __forceinline__ void add_weighted_keys(float (&row)[kColumnsPerLane], float rescale, const float* weights,
                                                  const float* tile, int pitch, int D) {
  const int lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int c = 0; c < kColumnsPerLane; c++) {
    const int d = lane + 32 * c;
    if (d >= D) break;
    float acc = row[c] * rescale;
    for (int j = 0; j < kKeys; j++) acc += weights[j] * tile[j * pitch + d];
    row[c] = acc;
  }
}

// Shared-memory floats of each kernel (the launcher sizes the dynamic allocation with these).
// Key tiles have an odd pitch (D + 1) so that lane j reading row j hits bank (j + d) % 32.
inline int forward_smem_floats(const AttentionShape& s) {
  return kQueries * s.Dk + kKeys * (s.Dk + 1) + kKeys * s.Dv + kQueries * kKeys;
}
inline int backward_q_smem_floats(const AttentionShape& s) {
  return kQueries * (s.Dk + s.Dv) + kKeys * (s.Dk + 1 + s.Dv + 1) + kQueries * kKeys;
}
inline int backward_kv_smem_floats(const AttentionShape& s) {
  return kKeys * (s.Dk + 1 + s.Dv + 1) + kQueries * (s.Dk + s.Dv) + 2 * kQueries * kKeys + 2 * kQueries;
}

// out [B, Tq, H, Dv] (=), lse [B, H, Tq]. Grid: (B * H, query tiles of 16), the last tiles first.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, AttentionShape s) {
  extern __shared__ float shared[];
  float* q_tile = shared;                         // [16][Dk]
  float* k_tile = q_tile + kQueries * s.Dk;       // [32][Dk + 1]
  float* v_tile = k_tile + kKeys * (s.Dk + 1);    // [32][Dv]
  float* weights = v_tile + kKeys * s.Dv;         // [16][32]: each warp's rows' softmax weights

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int b = int(blockIdx.x) / s.H, h = int(blockIdx.x) % s.H, kvh = h / (s.H / s.KVH);
  const int m0 = int(gridDim.y - 1 - blockIdx.y) * kQueries;
  const int offset = s.Tk - s.Tq;
  const int key_end = min(s.Tk, offset + m0 + kQueries);
  load_rows(q_tile, s.Dk, q + (int64_t(b) * s.Tq + m0) * s.q_stride + int64_t(h) * s.Dk, s.q_stride, kQueries,
            s.Tq - m0, s.Dk);

  float o[kRowsPerWarp][kColumnsPerLane] = {};
  float row_max[kRowsPerWarp], row_sum[kRowsPerWarp] = {};
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) row_max[r] = -INFINITY;
  const int n_tiles = (key_end + kKeys - 1) / kKeys;
  const segments::KeyTileSkip skip(s, b, m0, kKeys, n_tiles);
  for (int visit = 0; visit < skip.visits(n_tiles); visit++) {
    const int n0 = skip.at(visit) * kKeys;
    __syncthreads();  // the previous tile is consumed
    const int64_t key_row = int64_t(b) * s.Tk + n0;
    load_rows(k_tile, s.Dk + 1, k + key_row * s.k_stride + int64_t(kvh) * s.Dk, s.k_stride, kKeys, s.Tk - n0, s.Dk);
    load_rows(v_tile, s.Dv, v + key_row * s.v_stride + int64_t(kvh) * s.Dv, s.v_stride, kKeys, s.Tk - n0, s.Dv);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      const int row = warp * kRowsPerWarp + r, m = m0 + row;
      if (m >= s.Tq) break;  // warp-uniform
      const int n = n0 + lane, start = segments::start_of(s, b, m);
      // A tile wholly before the row's example: skipped, so the row's first tile has a visible key.
      if (n0 >= offset && n0 + kKeys <= offset + start) continue;  // warp-uniform
      const float score = n <= offset + m && !segments::hidden(offset, start, n)
                              ? dot(q_tile + row * s.Dk, k_tile + lane * (s.Dk + 1), s.Dk) * s.scale
                              : -INFINITY;
      const float new_max = fmaxf(row_max[r], warp_max(score));  // finite: the row's first tile has a visible key
      const float rescale = expf(row_max[r] - new_max);
      const float weight = expf(score - new_max);
      row_sum[r] = row_sum[r] * rescale + warp_sum(weight);
      row_max[r] = new_max;
      weights[row * kKeys + lane] = weight;
      __syncwarp();
      add_weighted_keys(o[r], rescale, weights + row * kKeys, v_tile, s.Dv, s.Dv);
      __syncwarp();
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    const int m = m0 + warp * kRowsPerWarp + r;
    if (m >= s.Tq) break;
    T* out_row = out + ((int64_t(b) * s.Tq + m) * s.H + h) * s.Dv;
#pragma unroll
    for (int c = 0; c < kColumnsPerLane; c++) {
      const int d = lane + 32 * c;
      if (d < s.Dv) out_row[d] = from_float<T>(o[r][c] / row_sum[r]);
    }
    if (lane == 0) lse[(int64_t(b) * s.H + h) * s.Tq + m] = row_max[r] + logf(row_sum[r]);
  }
}

// dq (layout of q) +=; dsum [B, H, Tq] = rowsum(dout * out). Grid as the forward.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_q_kernel(T* dq, const T* dout, const float* lse, const float* dsum, const T* q, const T* k, const T* v,
                      AttentionShape s) {
  extern __shared__ float shared[];
  float* q_tile = shared;                          // [16][Dk]
  float* dout_tile = q_tile + kQueries * s.Dk;     // [16][Dv]
  float* k_tile = dout_tile + kQueries * s.Dv;     // [32][Dk + 1]
  float* v_tile = k_tile + kKeys * (s.Dk + 1);     // [32][Dv + 1]
  float* dscores = v_tile + kKeys * (s.Dv + 1);    // [16][32]

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int b = int(blockIdx.x) / s.H, h = int(blockIdx.x) % s.H, kvh = h / (s.H / s.KVH);
  const int m0 = int(gridDim.y - 1 - blockIdx.y) * kQueries;
  const int offset = s.Tk - s.Tq;
  const int key_end = min(s.Tk, offset + m0 + kQueries);
  const int64_t row0 = int64_t(b) * s.Tq + m0;
  load_rows(q_tile, s.Dk, q + row0 * s.q_stride + int64_t(h) * s.Dk, s.q_stride, kQueries, s.Tq - m0, s.Dk);
  load_rows(dout_tile, s.Dv, dout + row0 * s.H * s.Dv + int64_t(h) * s.Dv, int64_t(s.H) * s.Dv, kQueries, s.Tq - m0,
            s.Dv);

  float dq_acc[kRowsPerWarp][kColumnsPerLane] = {};
  const int n_tiles = (key_end + kKeys - 1) / kKeys;
  const segments::KeyTileSkip skip(s, b, m0, kKeys, n_tiles);
  for (int visit = 0; visit < skip.visits(n_tiles); visit++) {
    const int n0 = skip.at(visit) * kKeys;
    __syncthreads();
    const int64_t key_row = int64_t(b) * s.Tk + n0;
    load_rows(k_tile, s.Dk + 1, k + key_row * s.k_stride + int64_t(kvh) * s.Dk, s.k_stride, kKeys, s.Tk - n0, s.Dk);
    load_rows(v_tile, s.Dv + 1, v + key_row * s.v_stride + int64_t(kvh) * s.Dv, s.v_stride, kKeys, s.Tk - n0, s.Dv);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      const int row = warp * kRowsPerWarp + r, m = m0 + row;
      if (m >= s.Tq) break;
      const int n = n0 + lane, start = segments::start_of(s, b, m);
      if (n0 >= offset && n0 + kKeys <= offset + start) continue;  // warp-uniform: nothing visible
      const int64_t index = (int64_t(b) * s.H + h) * s.Tq + m;
      float dscore = 0.0f;
      if (n <= offset + m && !segments::hidden(offset, start, n)) {
        const float p = expf(dot(q_tile + row * s.Dk, k_tile + lane * (s.Dk + 1), s.Dk) * s.scale - lse[index]);
        const float dp = dot(dout_tile + row * s.Dv, v_tile + lane * (s.Dv + 1), s.Dv);
        dscore = p * (dp - dsum[index]);
      }
      dscores[row * kKeys + lane] = dscore;
      __syncwarp();
      add_weighted_keys(dq_acc[r], 1.0f, dscores + row * kKeys, k_tile, s.Dk + 1, s.Dk);
      __syncwarp();
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    const int m = m0 + warp * kRowsPerWarp + r;
    if (m >= s.Tq) break;
    T* dq_row = dq + (int64_t(b) * s.Tq + m) * s.q_stride + int64_t(h) * s.Dk;
#pragma unroll
    for (int c = 0; c < kColumnsPerLane; c++) {
      const int d = lane + 32 * c;
      if (d < s.Dk) accumulate(dq_row + d, dq_acc[r][c] * s.scale);
    }
  }
}

// dk, dv (layouts of k, v) +=. Grid: (B * KVH, key tiles of 32). The query heads of the group are
// visited in order, then the query tiles that see the keys, so the sums have one fixed order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_kv_kernel(T* dk, T* dv, const T* dout, const float* lse, const float* dsum, const T* q, const T* k,
                       const T* v, AttentionShape s) {
  extern __shared__ float shared[];
  float* k_tile = shared;                           // [32][Dk + 1]
  float* v_tile = k_tile + kKeys * (s.Dk + 1);      // [32][Dv + 1]
  float* q_tile = v_tile + kKeys * (s.Dv + 1);      // [16][Dk]
  float* dout_tile = q_tile + kQueries * s.Dk;      // [16][Dv]
  float* probabilities = dout_tile + kQueries * s.Dv;  // [16][32]
  float* dscores = probabilities + kQueries * kKeys;   // [16][32]
  float* row_lse = dscores + kQueries * kKeys;         // [16]
  float* row_dsum = row_lse + kQueries;                // [16]

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int b = int(blockIdx.x) / s.KVH, kvh = int(blockIdx.x) % s.KVH, group = s.H / s.KVH;
  const int n0 = int(blockIdx.y) * kKeys, n = n0 + lane;
  const int offset = s.Tk - s.Tq;
  const int64_t key_row = int64_t(b) * s.Tk + n0;
  load_rows(k_tile, s.Dk + 1, k + key_row * s.k_stride + int64_t(kvh) * s.Dk, s.k_stride, kKeys, s.Tk - n0, s.Dk);
  load_rows(v_tile, s.Dv + 1, v + key_row * s.v_stride + int64_t(kvh) * s.Dv, s.v_stride, kKeys, s.Tk - n0, s.Dv);

  float dk_acc[kColumnsPerWarp] = {}, dv_acc[kColumnsPerWarp] = {};
  const int query_end = segments::query_end(s, b, n0, min(n0 + kKeys, s.Tk) - 1);  // Tq without segments
  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int m0 = max(0, n0 - offset); m0 < query_end; m0 += kQueries) {  // from the first query that sees key n0
      __syncthreads();  // the previous step is consumed (and the key tiles are in, the first time)
      const int64_t row0 = int64_t(b) * s.Tq + m0;
      load_rows(q_tile, s.Dk, q + row0 * s.q_stride + int64_t(h) * s.Dk, s.q_stride, kQueries, s.Tq - m0, s.Dk);
      load_rows(dout_tile, s.Dv, dout + row0 * s.H * s.Dv + int64_t(h) * s.Dv, int64_t(s.H) * s.Dv, kQueries,
                s.Tq - m0, s.Dv);
      if (threadIdx.x < kQueries) {
        const int m = m0 + int(threadIdx.x);
        const int64_t index = (int64_t(b) * s.H + h) * s.Tq + m;
        row_lse[threadIdx.x] = m < s.Tq ? lse[index] : 0.0f;
        row_dsum[threadIdx.x] = m < s.Tq ? dsum[index] : 0.0f;
      }
      __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
        const int row = warp * kRowsPerWarp + r, m = m0 + row;
        float p = 0.0f, dscore = 0.0f;
        if (m < s.Tq && n <= offset + m && !segments::hidden(offset, segments::start_of(s, b, m), n)) {
          p = expf(dot(q_tile + row * s.Dk, k_tile + lane * (s.Dk + 1), s.Dk) * s.scale - row_lse[row]);
          dscore = p * (dot(dout_tile + row * s.Dv, v_tile + lane * (s.Dv + 1), s.Dv) - row_dsum[row]);
        }
        probabilities[row * kKeys + lane] = p;
        dscores[row * kKeys + lane] = dscore;
      }
      __syncthreads();
#pragma unroll
      for (int c = 0; c < kColumnsPerWarp; c++) {
        const int d = warp + kWarps * c;
        if (d < s.Dv)
          for (int row = 0; row < kQueries; row++)
            dv_acc[c] += probabilities[row * kKeys + lane] * dout_tile[row * s.Dv + d];
        if (d < s.Dk)
          for (int row = 0; row < kQueries; row++) dk_acc[c] += dscores[row * kKeys + lane] * q_tile[row * s.Dk + d];
      }
    }
  }

  if (n >= s.Tk) return;
  T* dk_row = dk + (int64_t(b) * s.Tk + n) * s.k_stride + int64_t(kvh) * s.Dk;
  T* dv_row = dv + (int64_t(b) * s.Tk + n) * s.v_stride + int64_t(kvh) * s.Dv;
#pragma unroll
  for (int c = 0; c < kColumnsPerWarp; c++) {
    const int d = warp + kWarps * c;
    if (d < s.Dk) accumulate(dk_row + d, dk_acc[c] * s.scale);
    if (d < s.Dv) accumulate(dv_row + d, dv_acc[c]);
  }
}

}  // namespace dsk::kernels::cuda::simt
