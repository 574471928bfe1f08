// Serving's paged KV cache on the CPU: scattering new key/value rows into their slots and causal
// attention of a ragged batch through per-sequence block tables (kernels.hpp). The reference of
// kernels/cuda/paged_attention.cu; a query's scores over its keys exist in full here.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void paged_kv_write(float* pool, const float* rows, const int32_t* slots, int N, int row, int stride) {
  for (int n = 0; n < N; n++)
    std::memcpy(pool + int64_t(slots[n]) * stride, rows + int64_t(n) * row, sizeof(float) * row);
}

void paged_attention_forward(float* out, const float* q, const float* k_pool, const float* v_pool,
                             const int32_t* block_tables, const int32_t* sequence, const int32_t* positions,
                             const PagedAttentionShape& s) {
  const int group = s.H / s.KVH;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < s.N; n++) {
    for (int h = 0; h < s.H; h++) {
      const int kvh = h / group, keys = positions[n] + 1;
      const int32_t* table = block_tables + int64_t(sequence[n]) * s.max_blocks;
      const float* qv = q + int64_t(n) * s.q_stride + int64_t(h) * s.Dk;
      std::vector<float> p(static_cast<size_t>(keys));
      std::vector<int64_t> slot(static_cast<size_t>(keys));
      float maxv = -INFINITY;
      for (int j = 0; j < keys; j++) {
        slot[j] = int64_t(table[j / s.block_size]) * s.block_size + j % s.block_size;
        const float* kv = k_pool + slot[j] * s.k_stride + int64_t(kvh) * s.Dk;
        float dot = 0;
        for (int d = 0; d < s.Dk; d++) dot += qv[d] * kv[d];
        p[j] = dot * s.scale;
        maxv = std::max(maxv, p[j]);
      }
      float sum = 0;
      for (int j = 0; j < keys; j++) sum += p[j] = std::exp(p[j] - maxv);
      float* o = out + (int64_t(n) * s.H + h) * s.Dv;
      for (int d = 0; d < s.Dv; d++) o[d] = 0;
      for (int j = 0; j < keys; j++) {
        const float* vv = v_pool + slot[j] * s.v_stride + int64_t(kvh) * s.Dv;
        const float w = p[j] / sum;
        for (int d = 0; d < s.Dv; d++) o[d] += w * vv[d];
      }
    }
  }
}

}  // namespace dsk::kernels::cpu
