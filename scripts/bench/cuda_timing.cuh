// The timing helpers of the CUDA kernel benches (attention_bench.cu, packed_attention_bench.cu):
// device buffers of random values and the median of timed runs. Median of 20 after 3 warm-up runs
// unless told otherwise.
#pragma once

#include <algorithm>
#include <random>
#include <vector>

#include "cuda/common.cuh"

namespace dsk::bench {

template <typename T>
T* device_random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<T> host(n);
  for (T& x : host) x = kernels::cuda::from_float<T>(normal(rng));
  T* device = nullptr;
  DSK_CUDA_CHECK(cudaMalloc(&device, n * sizeof(T)));
  DSK_CUDA_CHECK(cudaMemcpy(device, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  return device;
}

// Median milliseconds of `work` over `runs` runs after `warmup` untimed ones, each run between two
// CUDA events.
template <typename Work>
double median_ms(Work&& work, int warmup = 3, int runs = 20) {
  cudaEvent_t start, stop;
  DSK_CUDA_CHECK(cudaEventCreate(&start));
  DSK_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < warmup; i++) work();
  std::vector<double> times;
  for (int i = 0; i < runs; i++) {
    DSK_CUDA_CHECK(cudaEventRecord(start));
    work();
    DSK_CUDA_CHECK(cudaEventRecord(stop));
    DSK_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    DSK_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  DSK_CUDA_CHECK(cudaEventDestroy(start));
  DSK_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return (times[runs / 2 - 1] + times[runs / 2]) / 2;
}

}  // namespace dsk::bench
