// Warp-level building blocks of the bf16 flash-attention kernels (attention_flash.cuh), sm_80 and
// later: cp.async tile loads into padded shared memory, ldmatrix fragment loads, and products of
// warp tiles (MT m16 tiles of rows each) on the m16n8k16 bf16 mma with fp32 accumulators.
//
// Fragment layouts are PTX's ("Matrix fragments for mma.m16n8k16"). With g = lane / 4 and
// t = lane % 4, an accumulator tile of 16 x 8 floats holds in each thread c[0], c[1] = (row g,
// columns 2t, 2t+1) and c[2], c[3] = (row g + 8, columns 2t, 2t+1). Two neighbouring accumulator
// tiles (16 x 16) are, packed to bf16, exactly an A operand (16 x k16) of the next product: that
// is how P = softmax(S) feeds P V without leaving registers.
#pragma once

#include "cuda/common.cuh"
#include "cuda/mma.cuh"

namespace dsk::kernels::cuda::flash {

// Rows of a tile in shared memory are padded by 8 elements (16 bytes): with a pitch of an odd
// number of 16-byte units, the 8 row addresses of one ldmatrix phase hit 8 different bank groups.
constexpr int kRowPadding = 8;

using ptx::cp_async_16;
using ptx::cp_async_4;
using ptx::cp_async_commit;
using ptx::ldmatrix_x4;
using ptx::ldmatrix_x4_transposed;
using ptx::mma_bf16;
using ptx::pack_bf16;
using ptx::shared_address;

__device__ __forceinline__ void cp_async_wait_all() { ptx::cp_async_wait<0>(); }

// Copies the bf16 tile rows [0, ROWS) x columns [0, D_PADDED), row r starting at source + r * stride,
// into destination (pitch D_PADDED + kRowPadding). Rows >= valid_rows and columns >= valid_columns
// (a multiple of 8) are zero-filled, so padding adds nothing to any product and is never NaN.
// source must be 16-byte aligned and stride a multiple of 8 (the launcher checks).
// Each thread keeps one 16-byte column and walks rows THREADS / (D_PADDED / 8) apart, so its
// addresses are one pointer plus a fixed step (few registers live across the caller's loop).
template <int ROWS, int D_PADDED, int THREADS>
__device__ __forceinline__ void load_tile_async(bf16* destination, const bf16* source, int64_t stride,
                                                int valid_rows, int valid_columns) {
  constexpr int kChunksPerRow = D_PADDED / 8;
  constexpr int kRowsPerPass = THREADS / kChunksPerRow;
  constexpr int kPitch = D_PADDED + kRowPadding;
  static_assert(kRowsPerPass > 0, "a tile row wider than the block");
  const int first_row = int(threadIdx.x) / kChunksPerRow, column = (int(threadIdx.x) % kChunksPerRow) * 8;
  if (first_row >= kRowsPerPass) return;  // the threads left over when kChunksPerRow does not divide THREADS
  const bool column_valid = column < valid_columns;
  const bf16* from = source + first_row * stride + column;
  bf16* to = destination + first_row * kPitch + column;
  const int64_t step = kRowsPerPass * stride;
#pragma unroll
  for (int pass = 0; pass < (ROWS + kRowsPerPass - 1) / kRowsPerPass; pass++) {
    const int row = first_row + pass * kRowsPerPass;
    if (ROWS % kRowsPerPass != 0 && row >= ROWS) break;
    const bool valid = column_valid && row < valid_rows;
    cp_async_16(to + pass * kRowsPerPass * kPitch, valid ? from : source, valid);
    from += step;
  }
}

// Copies `count` floats (a per-query vector such as lse) to shared memory; entries >= valid are 0.
template <int THREADS>
__device__ __forceinline__ void load_floats_async(float* destination, const float* source, int count, int valid) {
  for (int i = int(threadIdx.x); i < count; i += THREADS) cp_async_4(destination + i, i < valid ? source + i : source, i < valid);
}

// The three ways a warp reads 16 x 16 operands out of a bf16 tile of pitch PITCH (elements) at
// shared address `tile`. Each returns this lane's ldmatrix row address for the operand at the
// tile's origin; the operand at (row r, column c) is at that address + (r * PITCH + c) * 2, a
// constant in unrolled loops, so each tile costs one register.
//
// A operand (16 rows x k16 of a row-major [rows][k] tile): ldmatrix's matrices 0..3 are
// (rows +0, k +0), (rows +8, k +0), (rows +0, k +8), (rows +8, k +8) = a0..a3.
template <int PITCH>
__device__ __forceinline__ uint32_t a_lane_address(uint32_t tile) {
  const int lane = int(threadIdx.x) % 32;
  return tile + uint32_t(((lane % 16) * PITCH + (lane / 16) * 8) * 2);
}
// B operands of two n8 tiles (n +0, n +8) x k16 from a tile stored [n][k] (each row one n, k
// contiguous: K in Q K^T): matrices (n +0, k +0), (n +0, k +8), (n +8, k +0), (n +8, k +8), so
// b[0], b[1] serve the first n8 tile and b[2], b[3] the second.
template <int PITCH>
__device__ __forceinline__ uint32_t b_lane_address(uint32_t tile) {
  const int lane = int(threadIdx.x) % 32;
  return tile + uint32_t(((lane % 8 + (lane / 16) * 8) * PITCH + ((lane / 8) % 2) * 8) * 2);
}
// The same from a tile stored [k][n] (each row one k, n contiguous: V in P V), transposed on load:
// matrices (k +0, n +0), (k +8, n +0), (k +0, n +8), (k +8, n +8).
template <int PITCH>
__device__ __forceinline__ uint32_t b_transposed_lane_address(uint32_t tile) {
  const int lane = int(threadIdx.x) % 32;
  return tile + uint32_t(((lane % 8 + ((lane / 8) % 2) * 8) * PITCH + (lane / 16) * 8) * 2);
}

template <int PITCH>
__device__ __forceinline__ constexpr uint32_t element_offset(int row, int column) {
  return uint32_t((row * PITCH + column) * 2);
}

// A warp tile is MT m16 tiles (16 * MT rows) sharing every B fragment it loads: each ldmatrix of B
// then feeds 2 * MT mma, which keeps shared-memory traffic below what the tensor cores consume.
//
// acc[mt] tiles n0 / 8 and n0 / 8 + 1 += a[mt] times the B operands of those two n8 tiles.
template <int MT, int N>
__device__ __forceinline__ void mma_b_pair(float (&acc)[MT][N / 8][4], const uint32_t (&a)[MT][4],
                                           const uint32_t (&b)[4], int n0) {
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    mma_bf16(acc[mt][n0 / 8], a[mt], b[0], b[1]);
    mma_bf16(acc[mt][n0 / 8 + 1], a[mt], b[2], b[3]);
  }
}

// acc[mt] (16 x N) += A B or A B^T, A being rows 16 mt.. of a [rows][K] tile (pitch A_PITCH, shared
// address of the warp's first row in a_tile) and B a [K][N] tile (kTransposedB false) or an [N][K]
// tile (true), both in shared memory.
template <int MT, int K, int N, int A_PITCH, int B_PITCH, bool kTransposedB>
__device__ __forceinline__ void warp_product_shared(float (&acc)[MT][N / 8][4], uint32_t a_tile, uint32_t b_tile) {
  const uint32_t a_lane = a_lane_address<A_PITCH>(a_tile);
  const uint32_t b_lane = kTransposedB ? b_lane_address<B_PITCH>(b_tile) : b_transposed_lane_address<B_PITCH>(b_tile);
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) ldmatrix_x4(a[mt], a_lane + element_offset<A_PITCH>(16 * mt, k0));
#pragma unroll
    for (int n0 = 0; n0 < N; n0 += 16) {
      uint32_t b[4];
      if constexpr (kTransposedB)
        ldmatrix_x4(b, b_lane + element_offset<B_PITCH>(n0, k0));
      else
        ldmatrix_x4_transposed(b, b_lane + element_offset<B_PITCH>(k0, n0));
      mma_b_pair<MT, N>(acc, a, b, n0);
    }
  }
}

// The "Q K^T" shape: B is [N][K] (scores of the warp's queries against N keys).
template <int MT, int K, int N, int A_PITCH, int B_PITCH>
__device__ __forceinline__ void warp_product_abt(float (&acc)[MT][N / 8][4], uint32_t a_tile, uint32_t b_tile) {
  warp_product_shared<MT, K, N, A_PITCH, B_PITCH, true>(acc, a_tile, b_tile);
}

// The "dS K" shape with dS in shared memory: B is [K][N].
template <int MT, int K, int N, int A_PITCH, int B_PITCH>
__device__ __forceinline__ void warp_product_ab(float (&acc)[MT][N / 8][4], uint32_t a_tile, uint32_t b_tile) {
  warp_product_shared<MT, K, N, A_PITCH, B_PITCH, false>(acc, a_tile, b_tile);
}

// acc[mt] (16 x N) += P[mt] B: P (16 x K per m16 tile) is held in registers as accumulator tiles
// (rounded to bf16 here), B a [K][N] tile of pitch B_PITCH (the "P V" shape).
template <int MT, int K, int N, int B_PITCH>
__device__ __forceinline__ void warp_product_pb(float (&acc)[MT][N / 8][4], const float (&p)[MT][K / 8][4],
                                                uint32_t b_tile) {
  const uint32_t b_lane = b_transposed_lane_address<B_PITCH>(b_tile);
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
      const float(&left)[4] = p[mt][k0 / 8];
      const float(&right)[4] = p[mt][k0 / 8 + 1];
      a[mt][0] = pack_bf16(left[0], left[1]);
      a[mt][1] = pack_bf16(left[2], left[3]);
      a[mt][2] = pack_bf16(right[0], right[1]);
      a[mt][3] = pack_bf16(right[2], right[3]);
    }
#pragma unroll
    for (int n0 = 0; n0 < N; n0 += 16) {
      uint32_t b[4];
      ldmatrix_x4_transposed(b, b_lane + element_offset<B_PITCH>(k0, n0));
      mma_b_pair<MT, N>(acc, a, b, n0);
    }
  }
}

// Calls visit(mt, i, e, row, column) for every accumulator element this thread holds of a warp
// tile of MT m16 tiles x N columns (element acc[mt][i][e]): row = 16 mt + g + 8 (e / 2) within the
// warp tile, column = 8 i + 2 t + e % 2.
template <int MT, int N, typename Visit>
__device__ __forceinline__ void for_each_accumulator(Visit&& visit) {
  const int lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int i = 0; i < N / 8; i++) {
#pragma unroll
      for (int e = 0; e < 4; e++) visit(mt, i, e, 16 * mt + g + (e / 2) * 8, i * 8 + 2 * t + e % 2);
    }
  }
}

// Adds the thread's part of a warp tile's accumulators (MT m16 tiles x D columns; the thread holds
// rows 16 mt + g and 16 mt + g + 8) times `factor` into bf16 rows: row r of the warp tile at
// rows + r * stride; rows >= valid_rows and columns >= valid_columns are skipped. rows must be
// 4-byte aligned and stride even.
template <int MT, int D>
__device__ __forceinline__ void add_accumulator_rows(bf16* rows, int64_t stride, int valid_rows, int valid_columns,
                                                     const float (&acc)[MT][D / 8][4], float factor) {
  const int lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int row = 16 * mt + g + half * 8;
      if (row >= valid_rows) continue;
      bf16* destination = rows + row * stride;
#pragma unroll
      for (int i = 0; i < D / 8; i++) {
        const int column = i * 8 + 2 * t;
        if (column >= valid_columns) continue;
        auto* pair = reinterpret_cast<__nv_bfloat162*>(destination + column);
        const float2 old = __bfloat1622float2(*pair);
        *pair = __floats2bfloat162_rn(old.x + acc[mt][i][2 * half] * factor,
                                      old.y + acc[mt][i][2 * half + 1] * factor);
      }
    }
  }
}

// The same into fp32 rows (rows + r * stride, all columns of D), without factor, read and written
// past L1 (other blocks add to these rows between this block's visits). rows 8-byte aligned,
// stride even.
template <int MT, int D>
__device__ __forceinline__ void add_accumulator_rows_f32(float* rows, int64_t stride, int valid_rows,
                                                         const float (&acc)[MT][D / 8][4]) {
  const int lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int row = 16 * mt + g + half * 8;
      if (row >= valid_rows) continue;
      float* destination = rows + row * stride;
#pragma unroll
      for (int i = 0; i < D / 8; i++) {
        auto* pair = reinterpret_cast<float2*>(destination + i * 8 + 2 * t);
        const float2 old = __ldcg(pair);
        __stcg(pair, make_float2(old.x + acc[mt][i][2 * half], old.y + acc[mt][i][2 * half + 1]));
      }
    }
  }
}

}  // namespace dsk::kernels::cuda::flash
