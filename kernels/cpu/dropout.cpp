// Scaled dropout, the input side of a LoRA branch (lib/finetune/lora.cpp):
//   out[i] = keep(seed, i) ? in[i] * factor : 0,   factor = scale / (1 - p).
// The mask is counter-based (dropout_keeps, kernels.hpp): element i of a call with `seed` is kept
// or dropped the same way on every backend and again in backward, so no mask is stored.
#include "kernels.hpp"

namespace dsk::kernels::cpu {

void dropout_forward(float* out, const float* in, int64_t n, float factor, uint32_t threshold, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = dropout_keeps(seed, uint64_t(i), threshold) ? in[i] * factor : 0.0f;
}

void dropout_backward(float* din, const float* dout, int64_t n, float factor, uint32_t threshold, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++)
    if (dropout_keeps(seed, uint64_t(i), threshold)) din[i] += dout[i] * factor;
}

}  // namespace dsk::kernels::cpu
