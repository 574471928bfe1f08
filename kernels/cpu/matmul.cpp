// out [N,OC] = inp [N,C] @ weight[OC,C]^T + bias: every output is a dot product of two contiguous
// rows, so the inner loop vectorises; rows are blocked by 4 so each weight row is read once per
// block, and OpenMP splits the output rows.
#include "kernels.hpp"

namespace dsk::kernels::cpu {

namespace {
constexpr int kRowBlock = 4;
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
#pragma omp parallel for schedule(static)
  for (int n0 = 0; n0 < N; n0 += kRowBlock) {
    int rows = N - n0 < kRowBlock ? N - n0 : kRowBlock;
    for (int o = 0; o < OC; o++) {
      const float* w = weight + (int64_t)o * C;
      float acc[kRowBlock] = {0, 0, 0, 0};
      for (int r = 0; r < rows; r++) {
        const float* x = inp + (int64_t)(n0 + r) * C;
        float sum = 0;
        for (int c = 0; c < C; c++) sum += x[c] * w[c];
        acc[r] = sum;
      }
      for (int r = 0; r < rows; r++) out[(int64_t)(n0 + r) * OC + o] = acc[r] + (bias ? bias[o] : 0.0f);
    }
  }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  if (dinp) {  // dinp[n,:] += sum_o dout[n,o] * weight[o,:]
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      float* dx = dinp + (int64_t)n * C;
      const float* g = dout + (int64_t)n * OC;
      for (int o = 0; o < OC; o++) {
        const float* w = weight + (int64_t)o * C;
        float d = g[o];
        for (int c = 0; c < C; c++) dx[c] += d * w[c];
      }
    }
  }
  if (dweight || dbias) {  // dweight[o,:] += sum_n dout[n,o] * inp[n,:]; dbias[o] += sum_n dout[n,o]
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
      float* dw = dweight ? dweight + (int64_t)o * C : nullptr;
      float bias_sum = 0;
      for (int n = 0; n < N; n++) {
        float d = dout[(int64_t)n * OC + o];
        bias_sum += d;
        if (dw) {
          const float* x = inp + (int64_t)n * C;
          for (int c = 0; c < C; c++) dw[c] += d * x[c];
        }
      }
      if (dbias) dbias[o] += bias_sum;
    }
  }
}

}  // namespace dsk::kernels::cpu
