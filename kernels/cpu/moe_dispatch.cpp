// DeepSeekMoE's data movement around the experts: the (token, slot) pairs grouped by expert (a
// stable counting sort), gathered into one permuted batch that the experts' grouped matmuls run
// over, and combined back with the routing weights. Plus the two balancing mechanisms: the
// aux-loss-free bias update and the sequence-wise balance loss.
#include <cmath>
#include <vector>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void moe_permute(int32_t* offsets, int32_t* order, int32_t* row_of, int64_t* load, const int32_t* experts, int N,
                 int K, int E) {
  const int pairs = N * K;
  std::vector<int32_t> next(E + 1, 0);
  for (int p = 0; p < pairs; p++) next[experts[p] + 1]++;
  for (int e = 0; e < E; e++) load[e] += next[e + 1];
  for (int e = 0; e < E; e++) next[e + 1] += next[e];
  for (int e = 0; e <= E; e++) offsets[e] = next[e];
  for (int p = 0; p < pairs; p++) {
    int row = next[experts[p]]++;
    order[row] = p;
    row_of[p] = row;
  }
}

void moe_gather(float* xp, const float* x, const int32_t* order, int N, int K, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N * K; i++)
    for (int c = 0; c < C; c++) xp[(int64_t)i * C + c] = x[(int64_t)(order[i] / K) * C + c];
}

void moe_gather_backward(float* dx, const float* dxp, const int32_t* row_of, int N, int K, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      const float* g = dxp + (int64_t)row_of[n * K + k] * C;
      for (int c = 0; c < C; c++) dx[(int64_t)n * C + c] += g[c];
    }
}

void moe_combine_forward(float* out, const float* yp, const float* weights, const int32_t* row_of, int N, int K, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      const float w = weights[n * K + k];
      const float* y = yp + (int64_t)row_of[n * K + k] * C;
      for (int c = 0; c < C; c++) out[(int64_t)n * C + c] += w * y[c];
    }
}

void moe_combine_backward(float* dyp, float* dweights, const float* dout, const float* yp, const float* weights,
                          const int32_t* row_of, int N, int K, int C) {
#pragma omp parallel for schedule(static)
  for (int p = 0; p < N * K; p++) {
    const float* g = dout + (int64_t)(p / K) * C;
    const float* y = yp + (int64_t)row_of[p] * C;
    float* dy = dyp + (int64_t)row_of[p] * C;
    float dot = 0;
    for (int c = 0; c < C; c++) {
      dot += g[c] * y[c];
      dy[c] = weights[p] * g[c];
    }
    dweights[p] = dot;
  }
}

void moe_update_bias(float* bias, const int64_t* load, int E, float speed) {
  double mean = 0;
  for (int e = 0; e < E; e++) mean += (double)load[e];
  mean /= (double)E;
  for (int e = 0; e < E; e++) {
    double gap = mean - (double)load[e];
    bias[e] += speed * (float)((gap > 0) - (gap < 0));
  }
}

// d/d(logits) of alpha/B * sum_b sum_e f_e * mean_t(s_te / S_t), S_t = sum_j s_tj:
// d/ds_tj = c_j / S_t - sum_e c_e s_te / S_t^2 with c_e = alpha * f_e / (B*T); ds/dlogit = s (1 - s).
float moe_sequence_aux_loss(float* dlogits, const float* scores, const int32_t* experts, int B, int T, int E, int K,
                            float alpha) {
  double total = 0;
  std::vector<float> f(E);
  for (int b = 0; b < B; b++) {
    std::fill(f.begin(), f.end(), 0.0f);
    for (int t = 0; t < T; t++)
      for (int k = 0; k < K; k++) f[experts[((int64_t)b * T + t) * K + k]] += 1.0f;
    for (float& x : f) x *= (float)E / (float)(K * T);
    for (int t = 0; t < T; t++) {
      const int64_t n = (int64_t)b * T + t;
      const float* s = scores + n * E;
      double sum = 0;
      for (int e = 0; e < E; e++) sum += s[e];
      for (int e = 0; e < E; e++) total += f[e] * s[e] / sum;
      if (!dlogits) continue;
      float fsum = 0, weighted = 0;
      for (int e = 0; e < E; e++) fsum += s[e];
      const float c_scale = alpha / (float)(B * T);
      for (int e = 0; e < E; e++) weighted += f[e] * c_scale * s[e];
      for (int j = 0; j < E; j++) {
        float ds = f[j] * c_scale / fsum - weighted / (fsum * fsum);
        dlogits[n * E + j] += ds * s[j] * (1.0f - s[j]);
      }
    }
  }
  return (float)(alpha * total / ((double)B * T));
}

}  // namespace dsk::kernels::cpu
