// out [N,OC] = inp [N,C] @ weight[OC,C]^T + bias, and its backward. All three products are one
// kernel: out [R,C'] += A [R,K] @ B [K,C'] with A read through strides, as sums of scaled rows of
// B. Tiles of out (16 KiB) are accumulated in cache, 4 x 16 blocks of a tile in registers over a
// chunk of K, and the threads share the tiles. Nothing large is transposed (an LM head's dout is
// [N, vocab]: hundreds of MB); only the forward makes weight^T, one pass over the weight.
//   out     [N,OC] = bias + inp [N,C] @ weight^T [C,OC]
//   dinp    [N,C]  += dout [N,OC] @ weight [OC,C]
//   dweight [OC,C] += dout^T [OC,N] @ inp [N,C]
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.hpp"
#include "multiversion.hpp"

namespace dsk::kernels::cpu {

namespace {

constexpr int kTileFloats = 4096;    // accumulator tile of out: 16 KiB, in L1
constexpr int kTileMaxCols = 256;
constexpr int kTileMaxRows = kTileFloats / 16;

// 8 floats: one AVX2 register in the x86-64-v3 clone, two SSE registers in the baseline one.
typedef float float8 __attribute__((vector_size(32)));

// These helpers are always inlined, so no call passes a vector: the psABI note about AVX vectors
// in calls compiled without AVX does not apply (silenced down to the end of block_4x16).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
__attribute__((always_inline)) inline float8 load8(const float* p) {
  float8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store8(float* p, float8 v) { std::memcpy(p, &v, sizeof v); }

// 4 rows x 16 columns of a tile, kept in registers over k in [k0, k1): acc[r][c] += a_r[k] * b[k][c],
// with a_r[k] = a[r * a_row_stride + k * a_k_stride]. Inlined into axpy_tile (and so compiled
// for each of its targets). Plain arrays here stay in memory (load, add, store each k): vector
// variables are what keeps the eight accumulators in registers.
__attribute__((always_inline)) inline void block_4x16(float* acc, int64_t acc_stride, const float* a,
                                                      int64_t a_row_stride, int64_t a_k_stride, const float* b,
                                                      int64_t b_stride, int k0, int k1) {
  float8 t00 = load8(acc), t01 = load8(acc + 8);
  float8 t10 = load8(acc + acc_stride), t11 = load8(acc + acc_stride + 8);
  float8 t20 = load8(acc + 2 * acc_stride), t21 = load8(acc + 2 * acc_stride + 8);
  float8 t30 = load8(acc + 3 * acc_stride), t31 = load8(acc + 3 * acc_stride + 8);
  for (int k = k0; k < k1; k++) {
    const float* ak = a + (int64_t)k * a_k_stride;
    const float x0 = ak[0], x1 = ak[a_row_stride], x2 = ak[2 * a_row_stride], x3 = ak[3 * a_row_stride];
    const float* bk = b + (int64_t)k * b_stride;
    const float8 b0 = load8(bk), b1 = load8(bk + 8);
    t00 += x0 * b0;
    t01 += x0 * b1;
    t10 += x1 * b0;
    t11 += x1 * b1;
    t20 += x2 * b0;
    t21 += x2 * b1;
    t30 += x3 * b0;
    t31 += x3 * b1;
  }
  store8(acc, t00);
  store8(acc + 8, t01);
  store8(acc + acc_stride, t10);
  store8(acc + acc_stride + 8, t11);
  store8(acc + 2 * acc_stride, t20);
  store8(acc + 2 * acc_stride + 8, t21);
  store8(acc + 3 * acc_stride, t30);
  store8(acc + 3 * acc_stride + 8, t31);
}
#pragma GCC diagnostic pop

// One tile of out += A @ B: rows [0, rows) and columns [0, cols) of out (row stride out_stride)
// get sum over k of a[r, k] * b[k, :], where a[r, k] = a_values[r * a_row_stride + k * a_k_stride]
// and b's row k starts at b + k * b_stride. Accumulated in a local tile, added to out at the end.
// K goes in chunks whose rows of b stay in cache while every 4 x 16 block of the tile passes.
DSK_MULTIVERSION
void axpy_tile(float* out, int64_t out_stride, const float* a_values, int64_t a_row_stride, int64_t a_k_stride,
               const float* b, int64_t b_stride, int K, int rows, int cols) {
  constexpr int kChunk = 128;
  float acc[kTileMaxRows][kTileMaxCols];
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) acc[r][c] = 0.0f;
  const int full_rows = rows - rows % 4, full_cols = cols - cols % 16;
  for (int k0 = 0; k0 < K; k0 += kChunk) {
    const int k1 = K - k0 < kChunk ? K : k0 + kChunk;
    for (int r = 0; r < full_rows; r += 4)
      for (int c = 0; c < full_cols; c += 16)
        block_4x16(&acc[r][c], kTileMaxCols, a_values + (int64_t)r * a_row_stride, a_row_stride, a_k_stride, b + c,
                   b_stride, k0, k1);
    // The edges: rows past the last group of 4 (all columns), columns past the last 16.
    for (int k = k0; k < k1; k++) {
      const float* b_row = b + (int64_t)k * b_stride;
      for (int r = 0; r < rows; r++) {
        const float scale = a_values[(int64_t)r * a_row_stride + (int64_t)k * a_k_stride];
        const int c_begin = r < full_rows ? full_cols : 0;
        for (int c = c_begin; c < cols; c++) acc[r][c] += scale * b_row[c];
      }
    }
  }
  for (int r = 0; r < rows; r++) {
    float* o = out + (int64_t)r * out_stride;
    for (int c = 0; c < cols; c++) o[c] += acc[r][c];
  }
}

// out [R, C] += sum_k A[r,k] * B[k,:] (B is [K, C]) with A read through (row, k) strides; the
// threads share the tiles of out.
void accumulate_products(float* out, const float* a_values, int64_t a_row_stride, int64_t a_k_stride,
                         const float* b, int R, int C, int K) {
  // When A's rows are its contiguous direction (dweight reads dout^T), a narrow output (C = 64:
  // an LM head's hidden size) gets taller tiles, so each strided read of A uses a whole cache
  // line. Otherwise (dinp) each tile row is its own stream through A: 16 keep the prefetcher on.
  const int tile_cols = C < kTileMaxCols ? C : kTileMaxCols;
  const int tile_rows = a_row_stride == 1 ? std::clamp(kTileFloats / tile_cols, 16, kTileMaxRows) : 16;
  const int row_tiles = (R + tile_rows - 1) / tile_rows;
  const int col_tiles = (C + tile_cols - 1) / tile_cols;
  // Column-tile-major: a thread's consecutive tiles share one panel of B, which stays in cache.
#pragma omp parallel for schedule(static) collapse(2)
  for (int ct = 0; ct < col_tiles; ct++)
    for (int rt = 0; rt < row_tiles; rt++) {
      const int r0 = rt * tile_rows, c0 = ct * tile_cols;
      const int rows = R - r0 < tile_rows ? R - r0 : tile_rows;
      const int cols = C - c0 < tile_cols ? C - c0 : tile_cols;
      axpy_tile(out + (int64_t)r0 * C + c0, C, a_values + (int64_t)r0 * a_row_stride, a_row_stride, a_k_stride,
                b + c0, C, K, rows, cols);
    }
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  // out = bias, then out += inp [N,C] @ weight^T [C,OC] by the same tiles as the backward, over a
  // transposed copy of weight (one pass over it, against N * C * OC multiply-adds).
  std::vector<float> weight_t((size_t)C * OC);
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++)
    for (int o = 0; o < OC; o++) weight_t[(size_t)c * OC + o] = weight[(int64_t)o * C + c];
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) out[(int64_t)n * OC + o] = bias ? bias[o] : 0.0f;
  accumulate_products(out, inp, C, 1, weight_t.data(), N, OC, C);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  // dinp[n,:] += sum_o dout[n,o] * weight[o,:]
  if (dinp) accumulate_products(dinp, dout, OC, 1, weight, N, C, OC);
  // dweight[o,:] += sum_n dout[n,o] * inp[n,:]
  if (dweight) accumulate_products(dweight, dout, 1, OC, inp, OC, C, N);
  if (dbias) {  // dbias [OC] += sum_n dout[n,:]
    for (int n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) dbias[o] += dout[(int64_t)n * OC + o];
  }
}

}  // namespace dsk::kernels::cpu
