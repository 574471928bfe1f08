// out [N,OC] = inp [N,C] @ weight[OC,C]^T + bias. Every output is a dot product of two contiguous
// rows, vectorised with `omp simd` (lane-wise partial sums); rows are blocked by 4 so each weight
// row is loaded once per block, and OpenMP splits the rows between threads.
// The backward products are sums of scaled rows (axpy) into a small tile of accumulators that
// stays in cache, so nothing is transposed (an LM head's dout is [N, vocab]: hundreds of MB):
//   dinp [N,C]     += dout [N,OC] @ weight [OC,C]    tiles of dinp rows, one pass over weight each
//   dweight [OC,C] += dout^T [OC,N] @ inp [N,C]      tiles of weight rows, one pass over inp each
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels.hpp"
#include "multiversion.hpp"

namespace dsk::kernels::cpu {

namespace {

constexpr int kRowBlock = 4;
constexpr int kWeightChunk = 256;    // forward: weight rows streamed per (chunk, row block) task
constexpr int kTileFloats = 4096;    // backward accumulator tile: 16 KiB, in L1
constexpr int kTileMaxCols = 256;
constexpr int kTileMaxRows = kTileFloats / 16;

// out[n0..n0+rows, o] (= or +=) dot(inp[n,:], weight[o,:]) + bias[o] for o in [0, OC); rows <= 4.
// out's rows are out_stride apart (OC is a chunk of the full output width).
DSK_MULTIVERSION
void dot_row_block(float* out, int64_t out_stride, const float* inp, const float* weight, const float* bias,
                   int rows, int C, int OC, bool accumulate) {
  auto store = [&](int64_t at, float value) { out[at] = accumulate ? out[at] + value : value; };
  if (rows < kRowBlock) {  // the last partial block: one row at a time
    for (int n = 0; n < rows; n++)
      for (int o = 0; o < OC; o++) {
        const float* x = inp + (int64_t)n * C;
        const float* w = weight + (int64_t)o * C;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++) sum += x[c] * w[c];
        store((int64_t)n * out_stride + o, sum + (bias ? bias[o] : 0.0f));
      }
    return;
  }
  const float *x0 = inp, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
  for (int o = 0; o < OC; o++) {
    const float* w = weight + (int64_t)o * C;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int c = 0; c < C; c++) {
      s0 += x0[c] * w[c];
      s1 += x1[c] * w[c];
      s2 += x2[c] * w[c];
      s3 += x3[c] * w[c];
    }
    float b = bias ? bias[o] : 0.0f;
    store(o, s0 + b);
    store(out_stride + o, s1 + b);
    store(2 * out_stride + o, s2 + b);
    store(3 * out_stride + o, s3 + b);
  }
}

// One tile of out += A @ B: rows [0, rows) and columns [0, cols) of out (row stride out_stride)
// get sum over k of a[r, k] * b[k, :], where a[r, k] = a_values[r * a_row_stride + k * a_k_stride]
// and b's row k starts at b + k * b_stride. Accumulated in a local tile, added to out at the end.
DSK_MULTIVERSION
void axpy_tile(float* out, int64_t out_stride, const float* a_values, int64_t a_row_stride, int64_t a_k_stride,
               const float* b, int64_t b_stride, int K, int rows, int cols) {
  float acc[kTileMaxRows][kTileMaxCols];
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) acc[r][c] = 0.0f;
  for (int k = 0; k < K; k++) {
    const float* b_row = b + (int64_t)k * b_stride;
    for (int r = 0; r < rows; r++) {
      const float scale = a_values[(int64_t)r * a_row_stride + (int64_t)k * a_k_stride];
      float* row = acc[r];
#pragma omp simd
      for (int c = 0; c < cols; c++) row[c] += scale * b_row[c];
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
#pragma omp parallel for schedule(static) collapse(2)
  for (int rt = 0; rt < row_tiles; rt++)
    for (int ct = 0; ct < col_tiles; ct++) {
      const int r0 = rt * tile_rows, c0 = ct * tile_cols;
      const int rows = R - r0 < tile_rows ? R - r0 : tile_rows;
      const int cols = C - c0 < tile_cols ? C - c0 : tile_cols;
      axpy_tile(out + (int64_t)r0 * C + c0, C, a_values + (int64_t)r0 * a_row_stride, a_row_stride, a_k_stride,
                b + c0, C, K, rows, cols);
    }
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  // Tasks are (chunk of weight rows) x (block of 4 input rows), chunk-major: a thread's run of
  // tasks reuses one chunk of weight from cache instead of streaming all of it per row block.
  const int chunks = (OC + kWeightChunk - 1) / kWeightChunk, blocks = (N + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) collapse(2)
  for (int chunk = 0; chunk < chunks; chunk++)
    for (int block = 0; block < blocks; block++) {
      const int o0 = chunk * kWeightChunk, n0 = block * kRowBlock;
      const int width = OC - o0 < kWeightChunk ? OC - o0 : kWeightChunk;
      const int rows = N - n0 < kRowBlock ? N - n0 : kRowBlock;
      dot_row_block(out + (int64_t)n0 * OC + o0, OC, inp + (int64_t)n0 * C, weight + (int64_t)o0 * C,
                    bias ? bias + o0 : nullptr, rows, C, width, false);
    }
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
