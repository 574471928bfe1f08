// The noise of sampling on the device (kernels/cpu/sampling.cpp, kernels/cuda/sampling.cu): a
// uniform in (0, 1) for each (row seed, token id), from a counter-based hash (splitmix64's
// finalizer) so the CPU reference and the GPU kernel draw the very same numbers in any order.
// 24 bits of the hash make the float exact on both sides.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define DSK_HOST_DEVICE __host__ __device__
#else
#define DSK_HOST_DEVICE
#endif

namespace dsk::kernels {

DSK_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

DSK_HOST_DEVICE inline float noise_uniform(uint64_t seed, int32_t token) {
  const uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull * (uint64_t(uint32_t(token)) + 1));
  return (float(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

}  // namespace dsk::kernels
