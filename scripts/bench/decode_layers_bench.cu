// The persistent decode kernel (kernels/cuda/decode_layers.cuh) alone on llama-1b's layers of
// ../shared/bench-shapes (16 layers, 2048 wide, 16 heads of 128, SwiGLU 5504), bf16 random
// weights: microseconds a step at 1 and 4 sequences of a few hundred cached positions, against the
// layers' weight bytes over a device copy's bandwidth measured in the same run. Built with
// -DDSK_DECODE_TRACE it also prints where one layer's time goes (per phase, mean and worst block).
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib \
//     [-DDSK_DECODE_TRACE] scripts/bench/decode_layers_bench.cu kernels/cuda/decode_layers.cu kernels/cuda/common.cu
#include <cstdio>
#include <vector>

#include "cuda/decode_layers.cuh"
#include "cuda_timing.cuh"

using namespace dsk;
using namespace dsk::kernels::cuda;
using T = bf16;

namespace {

constexpr int kLayers = 16, kC = 2048, kH = 16, kKVH = 16, kD = 128, kI = 5504;
constexpr int kBlockSize = 16, kTableWidth = 32, kContext = 300;

__global__ void fill(T* p, size_t n, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = from_float<T>(scale * (float(h & 0xffff) / 32768.0f - 1.0f));
  }
}

T* random_buffer(size_t n, uint32_t seed, float scale) {
  T* p = nullptr;
  DSK_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  fill<<<1024, 256>>>(p, n, seed, scale);
  return p;
}

template <typename X>
X* upload(const std::vector<X>& host) {
  X* p = nullptr;
  DSK_CUDA_CHECK(cudaMalloc(&p, host.size() * sizeof(X)));
  DSK_CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(X), cudaMemcpyHostToDevice));
  return p;
}

double copy_bytes_per_s() {
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  DSK_CUDA_CHECK(cudaMalloc(&a, bytes));
  DSK_CUDA_CHECK(cudaMalloc(&b, bytes));
  const double ms = bench::median_ms([&] { DSK_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (ms * 1e-3);
}

}  // namespace

int main() {
  const int sequences = 4, slots = sequences * kTableWidth * kBlockSize;
  std::vector<DecodeLayer<T>> layers(kLayers);
  size_t weight_bytes = 0;
  for (int l = 0; l < kLayers; l++) {
    const uint32_t s = 1000u * uint32_t(l);
    DecodeLayer<T>& d = layers[size_t(l)];
    d.input_norm = random_buffer(kC, s + 1, 1.0f);
    for (int p = 0; p < 3; p++) {
      d.qkv[p] = random_buffer(size_t(kH) * kD * kC, s + 2 + p, 0.02f);
      d.qkv_bias[p] = nullptr;
    }
    d.o = random_buffer(size_t(kC) * kH * kD, s + 5, 0.02f);
    d.o_bias = nullptr;
    d.post_norm = random_buffer(kC, s + 6, 1.0f);
    d.gate = random_buffer(size_t(kI) * kC, s + 7, 0.02f);
    d.up = random_buffer(size_t(kI) * kC, s + 8, 0.02f);
    d.down = random_buffer(size_t(kC) * kI, s + 9, 0.02f);
    d.down_bias = nullptr;
    d.k_pool = random_buffer(size_t(slots) * kKVH * kD, s + 10, 1.0f);
    d.v_pool = random_buffer(size_t(slots) * kKVH * kD, s + 11, 1.0f);
    weight_bytes += (size_t(4) * kH * kD * kC + size_t(3) * kI * kC + 2 * kC) * sizeof(T);
  }
  std::vector<float> inv_freq(kD / 2);
  for (int i = 0; i < kD / 2; i++) inv_freq[size_t(i)] = std::pow(10000.0f, -2.0f * i / kD);
  std::vector<int32_t> tables;
  for (int s = 0; s < sequences; s++)
    for (int b = 0; b < kTableWidth; b++) tables.push_back(s * kTableWidth + b);

  DecodeLayersArgs<T> a{};
  a.layers = upload(layers);
  a.layer_count = kLayers;
  a.x = random_buffer(size_t(sequences) * kC, 7, 1.0f);
  a.q = random_buffer(size_t(sequences) * kH * kD, 8, 0.0f);
  a.k = random_buffer(size_t(sequences) * kKVH * kD, 9, 0.0f);
  a.v = random_buffer(size_t(sequences) * kKVH * kD, 10, 0.0f);
  a.act = random_buffer(size_t(sequences) * kI, 11, 0.0f);
  a.attention = random_buffer(size_t(sequences) * kH * kD, 12, 0.0f);
  DSK_CUDA_CHECK(cudaMalloc(&a.partials, decode_layers_partial_floats(1, kH, kD) * sizeof(float)));
  DSK_CUDA_CHECK(cudaMalloc(&a.counters, kDecodeCounters * sizeof(unsigned)));
  DSK_CUDA_CHECK(cudaMemset(a.counters, 0, kDecodeCounters * sizeof(unsigned)));
  a.block_tables = upload(tables);
  a.rope = RopeDevice{upload(inv_freq), 1.0f, false};
  a.C = kC;
  a.H = kH;
  a.KVH = kKVH;
  a.D = kD;
  a.I = kI;
  a.block_size = kBlockSize;
  a.table_width = kTableWidth;
  a.eps = 1e-6f;
  a.scale = 1.0f / std::sqrt(float(kD));

  const double bandwidth = copy_bytes_per_s();
  const double bound_us = double(weight_bytes) / bandwidth * 1e6;
  std::printf("copy %.2f TB/s, layers' weights %.3f GB: bound %.1f us a step\n", bandwidth / 1e12, weight_bytes / 1e9,
              bound_us);
  for (const int N : {1, 4}) {
    std::vector<int32_t> positions, slot_of, sequence;
    for (int n = 0; n < N; n++) {
      positions.push_back(kContext + 17 * n);
      sequence.push_back(n);
      slot_of.push_back((n * kTableWidth + positions.back() / kBlockSize) * kBlockSize + positions.back() % kBlockSize);
    }
    a.N = N;
    a.positions = upload(positions);
    a.slots = upload(slot_of);
    a.sequence = upload(sequence);
    if (decode_layers_partial_floats(N, kH, kD) > decode_layers_partial_floats(1, kH, kD)) {
      cudaFree(a.partials);
      DSK_CUDA_CHECK(cudaMalloc(&a.partials, decode_layers_partial_floats(N, kH, kD) * sizeof(float)));
    }
    bool ran = true;
    const double ms = bench::median_ms([&] { ran = decode_layers_forward<T>(a, layers.data(), nullptr) && ran; });
    DSK_CUDA_CHECK(cudaDeviceSynchronize());
    if (!ran) {
      std::printf("N %d: the kernel does not run this shape here\n", N);
      continue;
    }
    std::printf("N %d: %.1f us a step, %.2f TB/s, %.2f of the bound\n", N, ms * 1e3, weight_bytes / (ms * 1e-3) / 1e12,
                bound_us / (ms * 1e3));
#ifdef DSK_DECODE_TRACE
    decode_layers_print_trace();
#endif
  }
  return 0;
}
