// MLA's expansion of the compressed kv projection into per-head keys and values (and back).
#include <cstring>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void mla_expand_forward(float* k, float* v, const float* kv_b, const float* kv_a, int N, int H, int nope, int R, int Dv,
                        int kv_rank) {
  const int Dk = nope + R, kvb_row = nope + Dv;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    for (int h = 0; h < H; h++) {
      float* kh = k + ((int64_t)n * H + h) * Dk;
      const float* kvb = kv_b + ((int64_t)n * H + h) * kvb_row;
      std::memcpy(kh, kvb, sizeof(float) * nope);
      std::memcpy(kh + nope, kv_a + (int64_t)n * (kv_rank + R) + kv_rank, sizeof(float) * R);
      std::memcpy(v + ((int64_t)n * H + h) * Dv, kvb + nope, sizeof(float) * Dv);
    }
  }
}

void mla_expand_backward(float* dkv_b, float* dkv_a, const float* dk, const float* dv, int N, int H, int nope, int R,
                         int Dv, int kv_rank) {
  const int Dk = nope + R, kvb_row = nope + Dv;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    for (int h = 0; h < H; h++) {
      const float* kh = dk + ((int64_t)n * H + h) * Dk;
      float* kvb = dkv_b + ((int64_t)n * H + h) * kvb_row;
      for (int i = 0; i < nope; i++) kvb[i] += kh[i];
      for (int i = 0; i < Dv; i++) kvb[nope + i] += dv[((int64_t)n * H + h) * Dv + i];
      float* rope_key = dkv_a + (int64_t)n * (kv_rank + R) + kv_rank;  // the one key all heads share
      for (int r = 0; r < R; r++) rope_key[r] += kh[nope + r];
    }
  }
}

}  // namespace dsk::kernels::cpu
