// Times dsk's causal flash attention (kernels/cuda/attention.cu) in bf16, forward and
// forward+backward, on the shapes of ../shared/bench-shapes; scripts/bench/attention_torch.py times
// PyTorch's scaled_dot_product_attention on the same shapes and prints the ratio.
//
// Build (no CMake target; from the repository root, on a machine with nvcc), one line:
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib
//        scripts/bench/attention_bench.cu kernels/cuda/attention.cu kernels/cuda/common.cu -o attention_bench
// Run: ./attention_bench [--precision fp32] > dsk.txt; python3 scripts/bench/attention_torch.py --dsk dsk.txt
//
// Each timing is the median of 20 runs after 3 warm-up runs, each run between two CUDA events.
// TFLOP/s count the useful causal flops: forward 2 * B * H * T^2 * (Dk + Dv) / 2 (Q K^T and P V
// over the lower triangle); backward 2 * B * H * T^2 * (3 Dk + 2 Dv) / 2 (S again, dP, dV, dK,
// dQ), i.e. 2.5x the forward when Dk = Dv. The dQ kernel's second recomputation of S and dP is
// not counted.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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
using dsk::bench::kAttentionShapes;
using dsk::bench::median_ms;

constexpr int kRuns = 20;  // cuda_timing.cuh's median_ms

template <typename T>
void bench(const BenchShape& shape) {
  const int B = shape.B, length = shape.T, H = shape.H;
  const cuda::AttentionShape s = dsk::bench::causal_attention_shape(shape);
  const AttentionTensors<T> t(shape, s);
  DSK_CUDA_CHECK(cudaMemset(t.dq, 0, t.qk_size * sizeof(T)));
  DSK_CUDA_CHECK(cudaMemset(t.dk, 0, t.qk_size * sizeof(T)));
  DSK_CUDA_CHECK(cudaMemset(t.dv, 0, t.v_size * sizeof(T)));

  auto forward = [&] { cuda::attention_forward<T>(t.out, t.lse, t.q, t.k, t.v, s, nullptr); };
  auto forward_backward = [&] {
    forward();
    cuda::attention_backward<T>(t.dq, t.dk, t.dv, t.dout, t.out, t.lse, t.q, t.k, t.v, s, t.scratch, nullptr);
  };
  const double forward_ms = median_ms(forward), forward_backward_ms = median_ms(forward_backward);
  const double causal_pairs = double(B) * H * length * length / 2;
  const double forward_flops = 2 * causal_pairs * (shape.Dk + shape.Dv);
  const double backward_flops = 2 * causal_pairs * (3 * shape.Dk + 2 * shape.Dv);
  std::printf("%-12s %3d %5d %3d %4d %4d %10.3f %8.1f %12.3f %8.1f\n", shape.name, B, length, H, shape.Dk, shape.Dv,
              forward_ms, forward_flops / forward_ms / 1e9, forward_backward_ms,
              (forward_flops + backward_flops) / forward_backward_ms / 1e9);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool fp32 = false;
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--precision") == 0 && i + 1 < argc && std::strcmp(argv[i + 1], "fp32") == 0) {
      fp32 = true;
      i++;
    } else {
      std::fprintf(stderr, "usage: attention_bench [--precision fp32]\n");
      return 2;
    }
  }
  try {
    cudaDeviceProp properties{};
    DSK_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
    std::fprintf(stderr, "attention_bench: %s, dsk flash attention, %s, causal, median of %d\n", properties.name,
                 fp32 ? "fp32 (SIMT)" : "bf16 (tensor cores)", kRuns);
    std::printf("%-12s %3s %5s %3s %4s %4s %10s %8s %12s %8s\n", "shape", "B", "T", "H", "Dk", "Dv", "fwd_ms",
                "fwd_TF/s", "fwd+bwd_ms", "all_TF/s");
    for (const BenchShape& shape : kAttentionShapes) fp32 ? bench<float>(shape) : bench<cuda::bf16>(shape);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "attention_bench: error: %s\n", error.what());
    return 4;
  }
  return 0;
}
