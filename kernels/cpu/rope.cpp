// Rotary position embedding, in place. A pair (a, b) at position p with frequency f becomes
// (a cos - b sin, a sin + b cos) * attention_factor, angle = p * f; backward applies the transpose.
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

namespace {

void rotate(float* x, const int32_t* positions, const Rope& rope, int N, int H, int head_stride, int offset,
            int rot_dim, float sign) {
  int half = rot_dim / 2;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    for (int i = 0; i < half; i++) {
      float angle = (float)positions[n] * rope.inv_freq[i];
      float cos_a = std::cos(angle) * rope.attention_factor;
      float sin_a = sign * std::sin(angle) * rope.attention_factor;
      int ia = rope.interleaved ? 2 * i : i;
      int ib = rope.interleaved ? 2 * i + 1 : i + half;
      for (int h = 0; h < H; h++) {
        float* head = x + ((int64_t)n * H + h) * head_stride + offset;
        float a = head[ia], b = head[ib];
        head[ia] = a * cos_a - b * sin_a;
        head[ib] = a * sin_a + b * cos_a;
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, const int32_t* positions, const Rope& rope, int N, int H, int head_stride, int offset,
                  int rot_dim) {
  rotate(x, positions, rope, N, H, head_stride, offset, rot_dim, 1.0f);
}

void rope_backward(float* dx, const int32_t* positions, const Rope& rope, int N, int H, int head_stride, int offset,
                   int rot_dim) {
  rotate(dx, positions, rope, N, H, head_stride, offset, rot_dim, -1.0f);
}

}  // namespace dsk::kernels::cpu
