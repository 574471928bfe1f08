// out [N,OC] = inp [N,C] @ weight[OC,C]^T + bias: every output is a dot product of two contiguous
// rows, vectorised with `omp simd` (lane-wise partial sums); rows are blocked by 4 so each weight
// row is loaded once per block, and OpenMP splits the rows between threads.
#include "kernels.hpp"

namespace dsk::kernels::cpu {

namespace {
constexpr int kRowBlock = 4;
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
#pragma omp parallel for schedule(static)
  for (int n0 = 0; n0 < N; n0 += kRowBlock) {
    if (N - n0 < kRowBlock) {  // the last partial block: one row at a time
      for (int n = n0; n < N; n++)
        for (int o = 0; o < OC; o++) {
          const float* x = inp + (int64_t)n * C;
          const float* w = weight + (int64_t)o * C;
          float sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int c = 0; c < C; c++) sum += x[c] * w[c];
          out[(int64_t)n * OC + o] = sum + (bias ? bias[o] : 0.0f);
        }
      continue;
    }
    const float* x0 = inp + (int64_t)n0 * C;
    const float *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
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
      out[(int64_t)n0 * OC + o] = s0 + b;
      out[(int64_t)(n0 + 1) * OC + o] = s1 + b;
      out[(int64_t)(n0 + 2) * OC + o] = s2 + b;
      out[(int64_t)(n0 + 3) * OC + o] = s3 + b;
    }
  }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  if (dinp) {  // dinp[n,:] += sum_o dout[n,o] * weight[o,:], 4 rows per weight-row load
#pragma omp parallel for schedule(static)
    for (int n0 = 0; n0 < N; n0 += kRowBlock) {
      int rows = N - n0 < kRowBlock ? N - n0 : kRowBlock;
      for (int o = 0; o < OC; o++) {
        const float* w = weight + (int64_t)o * C;
        for (int r = 0; r < rows; r++) {
          float d = dout[(int64_t)(n0 + r) * OC + o];
          float* dx = dinp + (int64_t)(n0 + r) * C;
#pragma omp simd
          for (int c = 0; c < C; c++) dx[c] += d * w[c];
        }
      }
    }
  }
  if (dweight || dbias) {  // dweight[o,:] += sum_n dout[n,o] * inp[n,:], 4 weight rows per input-row load
#pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OC; o0 += kRowBlock) {
      int rows = OC - o0 < kRowBlock ? OC - o0 : kRowBlock;
      for (int n = 0; n < N; n++) {
        const float* x = inp + (int64_t)n * C;
        for (int r = 0; r < rows; r++) {
          float d = dout[(int64_t)n * OC + o0 + r];
          if (dbias) dbias[o0 + r] += d;
          if (!dweight) continue;
          float* dw = dweight + (int64_t)(o0 + r) * C;
#pragma omp simd
          for (int c = 0; c < C; c++) dw[c] += d * x[c];
        }
      }
    }
  }
}

}  // namespace dsk::kernels::cpu
