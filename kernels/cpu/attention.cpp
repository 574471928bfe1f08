// Causal scaled-dot-product attention with grouped K/V heads, materialising the [Tq,Tk] scores
// (the CPU reference; the CUDA kernel is flash-style). Query head h reads K/V head h / (H/KVH).
// With packed rows (s.segment_start) a query sees the keys before the query part and those of
// its own example up to itself (kernels.hpp); the visible keys are two ranges, visited in order.
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

namespace {

// The keys query t of row b sees: [0, prefix_end) then [first, last]. Without segments the two
// ranges meet (first == prefix_end), so the keys 0..last are visited in the usual order.
struct VisibleKeys {
  int prefix_end, first, last;

  VisibleKeys(const AttentionShape& s, int b, int t) {
    prefix_end = s.Tk - s.Tq;
    first = prefix_end + (s.segment_start ? s.segment_start[(int64_t)b * s.Tq + t] : 0);
    last = prefix_end + t;  // the absolute position of this query
  }
  template <typename Visit>
  void each(Visit&& visit) const {
    for (int j = 0; j < prefix_end; j++) visit(j);
    for (int j = first; j <= last; j++) visit(j);
  }
};

}  // namespace

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const AttentionShape& s) {
  int group = s.H / s.KVH;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; b++) {
    for (int h = 0; h < s.H; h++) {
      int kvh = h / group;
      for (int t = 0; t < s.Tq; t++) {
        const VisibleKeys keys(s, b, t);
        const float* qv = q + ((int64_t)b * s.Tq + t) * s.q_stride + (int64_t)h * s.Dk;
        float* p = probs + (((int64_t)b * s.H + h) * s.Tq + t) * s.Tk;
        float maxv = -INFINITY;
        keys.each([&](int j) {
          const float* kv = k + ((int64_t)b * s.Tk + j) * s.k_stride + (int64_t)kvh * s.Dk;
          float dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int d = 0; d < s.Dk; d++) dot += qv[d] * kv[d];
          p[j] = dot * s.scale;
          maxv = p[j] > maxv ? p[j] : maxv;
        });
        float sum = 0;
        keys.each([&](int j) {
          p[j] = std::exp(p[j] - maxv);
          sum += p[j];
        });
        keys.each([&](int j) { p[j] /= sum; });
        for (int j = keys.prefix_end; j < keys.first; j++) p[j] = 0;
        for (int j = keys.last + 1; j < s.Tk; j++) p[j] = 0;
        float* o = out + (((int64_t)b * s.Tq + t) * s.H + h) * s.Dv;
        for (int d = 0; d < s.Dv; d++) o[d] = 0;
        keys.each([&](int j) {
          const float* vv = v + ((int64_t)b * s.Tk + j) * s.v_stride + (int64_t)kvh * s.Dv;
#pragma omp simd
          for (int d = 0; d < s.Dv; d++) o[d] += p[j] * vv[d];
        });
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
          const VisibleKeys keys(s, b, t);
          const float* p = probs + (((int64_t)b * s.H + h) * s.Tq + t) * s.Tk;
          const float* go = dout + (((int64_t)b * s.Tq + t) * s.H + h) * s.Dv;
          const float* qv = q + ((int64_t)b * s.Tq + t) * s.q_stride + (int64_t)h * s.Dk;
          float* dqv = dq + ((int64_t)b * s.Tq + t) * s.q_stride + (int64_t)h * s.Dk;
          float weighted = 0;
          keys.each([&](int j) {
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
          });
          keys.each([&](int j) {
            float ds = p[j] * (dscore[j] - weighted) * s.scale;
            const float* kv = k + ((int64_t)b * s.Tk + j) * s.k_stride + (int64_t)kvh * s.Dk;
            float* dkv = dk + ((int64_t)b * s.Tk + j) * s.k_stride + (int64_t)kvh * s.Dk;
#pragma omp simd
            for (int d = 0; d < s.Dk; d++) {
              dqv[d] += ds * kv[d];
              dkv[d] += ds * qv[d];
            }
          });
        }
      }
    }
  }
}

}  // namespace dsk::kernels::cpu
