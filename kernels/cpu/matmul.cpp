// out [N,OC] = inp [N,C] @ weight[OC,C]^T + bias. Every output is a dot product of two contiguous
// rows, vectorised with `omp simd` (lane-wise partial sums); rows are blocked by 4 so each weight
// row is loaded once per block, and OpenMP splits the rows between threads. The backward products
// are the same kernel on transposed copies (a transpose costs O(rows*cols), the product O(N*C*OC)):
// dinp = dout @ weight, dweight = dout^T @ inp.
#include <cstddef>
#include <vector>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

namespace {

constexpr int kRowBlock = 4;

// in [rows, cols] -> out [cols, rows].
void transpose(float* out, const float* in, int rows, int cols) {
#pragma omp parallel for schedule(static)
  for (int c = 0; c < cols; c++)
    for (int r = 0; r < rows; r++) out[(int64_t)c * rows + r] = in[(int64_t)r * cols + c];
}

// out[n,o] (= or +=) dot(inp[n,:], weight[o,:]) + bias[o].
void dot_rows(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC,
              bool accumulate) {
  auto store = [&](int64_t at, float value) { out[at] = accumulate ? out[at] + value : value; };
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
          store((int64_t)n * OC + o, sum + (bias ? bias[o] : 0.0f));
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
      store((int64_t)n0 * OC + o, s0 + b);
      store((int64_t)(n0 + 1) * OC + o, s1 + b);
      store((int64_t)(n0 + 2) * OC + o, s2 + b);
      store((int64_t)(n0 + 3) * OC + o, s3 + b);
    }
  }
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  dot_rows(out, inp, weight, bias, N, C, OC, false);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  if (dinp) {  // dinp [N,C] += dout [N,OC] @ weight [OC,C]
    std::vector<float> weight_t((size_t)C * OC);
    transpose(weight_t.data(), weight, OC, C);
    dot_rows(dinp, dout, weight_t.data(), nullptr, N, OC, C, true);
  }
  if (dweight) {  // dweight [OC,C] += dout^T [OC,N] @ inp [N,C]
    std::vector<float> dout_t((size_t)OC * N), inp_t((size_t)C * N);
    transpose(dout_t.data(), dout, N, OC);
    transpose(inp_t.data(), inp, N, C);
    dot_rows(dweight, dout_t.data(), inp_t.data(), nullptr, OC, N, C, true);
  }
  if (dbias) {  // dbias [OC] += sum_n dout[n,:]
    for (int n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) dbias[o] += dout[(int64_t)n * OC + o];
  }
}

}  // namespace dsk::kernels::cpu
