#include "cpu/sampling_noise.hpp"
#include "cuda/sampling.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

struct Best {
  float value;
  int index;
};

// The larger value wins; equal values go to the lower index.
__device__ __forceinline__ Best better(Best a, Best b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

__global__ void sample_rows_kernel(int32_t* ids, const float* logits, const float* temperatures,
                                   const uint64_t* seeds, int V) {
  __shared__ Best warp_best[kThreads / 32];
  const float* row = logits + (int64_t)blockIdx.x * V;
  const float temperature = temperatures ? temperatures[blockIdx.x] : 0.0f;
  Best best{-INFINITY, V};
  if (temperature <= 0.0f) {
    for (int i = threadIdx.x; i < V; i += kThreads) best = better(best, Best{row[i], i});
  } else {
    const uint64_t seed = seeds[blockIdx.x];
    for (int i = threadIdx.x; i < V; i += kThreads)
      best = better(best, Best{row[i] / temperature - logf(-logf(noise_uniform(seed, i))), i});
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const Best other{__shfl_xor_sync(0xffffffffu, best.value, offset),
                     __shfl_xor_sync(0xffffffffu, best.index, offset)};
    best = better(best, other);
  }
  if (threadIdx.x % 32 == 0) warp_best[threadIdx.x / 32] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; w++) best = better(best, warp_best[w]);
    ids[blockIdx.x] = best.index < V ? best.index : 0;  // a row of NaNs: 0, as std::max_element gives
  }
}

}  // namespace

void sample_rows(int32_t* ids, const float* logits, const float* temperatures, const uint64_t* seeds, int rows, int V,
                 cudaStream_t stream) {
  if (rows == 0) return;
  sample_rows_kernel<<<rows, kThreads, 0, stream>>>(ids, logits, temperatures, seeds, V);
  DSK_CUDA_CHECK_LAUNCH();
}

}  // namespace dsk::kernels::cuda
