// Times dsk's flash attention (kernels/cuda/attention.cu, bf16) over packed rows
// (AttentionShape::segment_start) against plain causal attention on the same rows: the padded
// layout's cost per row. Rows of T positions hold examples of L positions each (the last one cut
// at the row's end); the kernels skip the key tiles before each query tile's example, so the
// packed time should fall towards the share of score pairs that remain, L / T of the causal ones
// (printed as "pairs"), and never exceed the causal time.
//
// Build (from the repository root, on a machine with nvcc), one line:
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib
//        scripts/bench/packed_attention_bench.cu kernels/cuda/attention.cu kernels/cuda/common.cu -o packed_attention_bench
// Run: ./packed_attention_bench
// Each timing is the median of 20 runs (forward + backward) after 3 warm-up runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <random>
#include <vector>

#include "attention_tensors.cuh"
#include "cuda/attention.cuh"
#include "cuda_timing.cuh"

namespace {

namespace cuda = dsk::kernels::cuda;
using dsk::bench::AttentionTensors;
using dsk::bench::BenchShape;
using dsk::bench::median_ms;

constexpr BenchShape kShapes[] = {
    {"llama-1b", 4, 2048, 16, 128, 128},
    {"moe-16e-mla", 8, 1024, 16, 96, 64},
    {"dense-124m", 16, 1024, 12, 64, 64},
};
constexpr int kExampleLengths[] = {128, 256, 512};
constexpr int kRuns = 20;  // cuda_timing.cuh's median_ms

void bench(const BenchShape& shape) {
  using T = cuda::bf16;
  const int B = shape.B, length = shape.T, H = shape.H;
  cuda::AttentionShape s = dsk::bench::causal_attention_shape(shape);
  const AttentionTensors<T> t(shape, s);
  int32_t* starts;
  DSK_CUDA_CHECK(cudaMalloc(&starts, size_t(B) * length * sizeof(int32_t)));
  auto forward_backward = [&] {
    cuda::attention_forward<T>(t.out, t.lse, t.q, t.k, t.v, s, nullptr);
    cuda::attention_backward<T>(t.dq, t.dk, t.dv, t.dout, t.out, t.lse, t.q, t.k, t.v, s, t.scratch, nullptr);
  };
  const double causal_ms = median_ms(forward_backward);
  std::printf("%-12s %3d %5d %3d %4d %4d %8s %10.3f %10s %8s %6s\n", shape.name, B, length, H, shape.Dk, shape.Dv,
              "causal", causal_ms, "-", "-", "1.00");
  for (int example : kExampleLengths) {
    std::vector<int32_t> host(size_t(B) * length);
    double pairs = 0;
    for (int b = 0; b < B; b++)
      for (int t = 0; t < length; t++) {
        host[size_t(b) * length + t] = t / example * example;
        pairs += t - t / example * example + 1;
      }
    DSK_CUDA_CHECK(cudaMemcpy(starts, host.data(), host.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    s.segment_start = starts;
    const double packed_ms = median_ms(forward_backward);
    s.segment_start = nullptr;
    const double causal_pairs = double(B) * length * (length + 1) / 2;
    std::printf("%-12s %3d %5d %3d %4d %4d %8d %10.3f %10.3f %8.3f %6.2f\n", shape.name, B, length, H, shape.Dk,
                shape.Dv, example, causal_ms, packed_ms, pairs / causal_pairs, packed_ms / causal_ms);
    std::fflush(stdout);
  }
  DSK_CUDA_CHECK(cudaFree(starts));
}

}  // namespace

int main() {
  try {
    cudaDeviceProp properties{};
    DSK_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
    std::fprintf(stderr, "packed_attention_bench: %s, bf16, forward + backward, median of %d\n", properties.name, kRuns);
    std::printf("%-12s %3s %5s %3s %4s %4s %8s %10s %10s %8s %6s\n", "shape", "B", "T", "H", "Dk", "Dv", "example",
                "causal_ms", "packed_ms", "pairs", "ratio");
    for (const BenchShape& shape : kShapes) bench(shape);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "packed_attention_bench: error: %s\n", error.what());
    return 4;
  }
  return 0;
}
