// The generation KV cache, [B, max_length, row] per layer: appending new positions and gathering
// the filled ones contiguously for attention.
#include <cstring>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void kv_cache_append(float* cache, const float* rows, int B, int T_new, int max_length, int length, int row) {
  for (int b = 0; b < B; b++)
    std::memcpy(cache + ((int64_t)b * max_length + length) * row, rows + (int64_t)b * T_new * row,
                sizeof(float) * T_new * row);
}

void kv_cache_gather(float* out, const float* cache, int B, int Tk, int max_length, int row) {
  for (int b = 0; b < B; b++)
    std::memcpy(out + (int64_t)b * Tk * row, cache + (int64_t)b * max_length * row, sizeof(float) * Tk * row);
}

}  // namespace dsk::kernels::cpu
