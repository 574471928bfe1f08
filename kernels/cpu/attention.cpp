// Causal scaled-dot-product attention with grouped K/V heads, materialising the [Tq,Tk] scores
// (the CPU reference; the CUDA kernel is flash-style). Query head h reads K/V head h / (H/KVH).
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const AttentionShape& s) {
  int group = s.H / s.KVH;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; b++) {
    for (int h = 0; h < s.H; h++) {
      int kvh = h / group;
      for (int t = 0; t < s.Tq; t++) {
        int last = s.Tk - s.Tq + t;  // the absolute position of this query: it sees keys 0..last
        const float* qv = q + ((int64_t)b * s.Tq + t) * s.q_stride + (int64_t)h * s.Dk;
        float* p = probs + (((int64_t)b * s.H + h) * s.Tq + t) * s.Tk;
        float maxv = -INFINITY;
        for (int j = 0; j <= last; j++) {
          const float* kv = k + ((int64_t)b * s.Tk + j) * s.k_stride + (int64_t)kvh * s.Dk;
          float dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int d = 0; d < s.Dk; d++) dot += qv[d] * kv[d];
          p[j] = dot * s.scale;
          maxv = p[j] > maxv ? p[j] : maxv;
        }
        float sum = 0;
        for (int j = 0; j <= last; j++) {
          p[j] = std::exp(p[j] - maxv);
          sum += p[j];
        }
        for (int j = 0; j <= last; j++) p[j] /= sum;
        for (int j = last + 1; j < s.Tk; j++) p[j] = 0;
        float* o = out + (((int64_t)b * s.Tq + t) * s.H + h) * s.Dv;
        for (int d = 0; d < s.Dv; d++) o[d] = 0;
        for (int j = 0; j <= last; j++) {
          const float* vv = v + ((int64_t)b * s.Tk + j) * s.v_stride + (int64_t)kvh * s.Dv;
#pragma omp simd
          for (int d = 0; d < s.Dv; d++) o[d] += p[j] * vv[d];
        }
      }
    }
  }
}

// dP = dout . v; dS = P * (dP - sum(P * dP)); dq += scale dS k; dk += scale dS q; dv += P dout.
// Split by (batch, K/V head) so the heads sharing one dk/dv row never run concurrently.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs, const float* q,
                        const float* k, const float* v, const AttentionShape& s) {
  int group = s.H / s.KVH;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; b++) {
    for (int kvh = 0; kvh < s.KVH; kvh++) {
      std::vector<float> dscore(s.Tk);
      for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        for (int t = 0; t < s.Tq; t++) {
          int last = s.Tk - s.Tq + t;
          const float* p = probs + (((int64_t)b * s.H + h) * s.Tq + t) * s.Tk;
          const float* go = dout + (((int64_t)b * s.Tq + t) * s.H + h) * s.Dv;
          const float* qv = q + ((int64_t)b * s.Tq + t) * s.q_stride + (int64_t)h * s.Dk;
          float* dqv = dq + ((int64_t)b * s.Tq + t) * s.q_stride + (int64_t)h * s.Dk;
          float weighted = 0;
          for (int j = 0; j <= last; j++) {
            const float* vv = v + ((int64_t)b * s.Tk + j) * s.v_stride + (int64_t)kvh * s.Dv;
            float* dvv = dv + ((int64_t)b * s.Tk + j) * s.v_stride + (int64_t)kvh * s.Dv;
            float dp = 0;
#pragma omp simd reduction(+ : dp)
            for (int d = 0; d < s.Dv; d++) {
              dp += go[d] * vv[d];
              dvv[d] += p[j] * go[d];
            }
            dscore[j] = dp;
            weighted += p[j] * dp;
          }
          for (int j = 0; j <= last; j++) {
            float ds = p[j] * (dscore[j] - weighted) * s.scale;
            const float* kv = k + ((int64_t)b * s.Tk + j) * s.k_stride + (int64_t)kvh * s.Dk;
            float* dkv = dk + ((int64_t)b * s.Tk + j) * s.k_stride + (int64_t)kvh * s.Dk;
#pragma omp simd
            for (int d = 0; d < s.Dk; d++) {
              dqv[d] += ds * kv[d];
              dkv[d] += ds * qv[d];
            }
          }
        }
      }
    }
  }
}

}  // namespace dsk::kernels::cpu
