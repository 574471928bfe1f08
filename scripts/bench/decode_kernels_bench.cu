// Times the three kernels of a decode step that are latency-bound at few rows: paged attention
// (kernels/cuda/paged_attention.cu), RoPE (rope.cu) and the RMSNorm forward (rmsnorm.cu), bf16, on
// llama-1b's shape (../shared/bench-shapes: hidden 2048, 16 heads of 128), at N = 1 and 32 decode
// rows, against a few contexts (130 keys: a 128-token prompt's first steps; 1000 keys; a grid
// sized for 4096 keys as a CUDA graph's replays pass it), and at prefill sizes to show that large
// N is not slower. scripts/device/decode-kernels-gpu.sh builds it against this tree and against
// the kernels of a base commit and prints both.
//
// Build (no CMake target; from the repository root, on a machine with nvcc), one line:
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib
//        scripts/bench/decode_kernels_bench.cu kernels/cuda/paged_attention.cu kernels/cuda/rope.cu
//        kernels/cuda/rmsnorm.cu kernels/cuda/common.cu -o decode_kernels_bench
// Run: ./decode_kernels_bench   (one line per case on stdout: kernel N keys grid_keys us)
//
// Each timing: 20 launches back to back between two CUDA events (as the kernels of a decode step
// follow each other; a single launch between events would mostly time the launch), divided by 20;
// the median of 50 such runs after 3 warm-up runs.
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

#include "cuda/elementwise.cuh"
#include "cuda/paged_attention.cuh"
#include "cuda_timing.cuh"

namespace {

namespace cuda = dsk::kernels::cuda;
using cuda::bf16;
using dsk::bench::device_random;
using dsk::bench::median_ms;

constexpr int kHidden = 2048, kHeads = 16, kHeadDim = 128, kBlockSize = 16;
constexpr int kLaunches = 20, kRuns = 50;

// Microseconds per launch of `launch`.
template <typename Launch>
double per_launch_us(Launch&& launch) {
  auto work = [&] {
    for (int i = 0; i < kLaunches; i++) launch();
  };
  return median_ms(work, 3, kRuns) * 1000.0 / kLaunches;
}

template <typename T>
T* device_alloc(size_t n) {
  T* p = nullptr;
  DSK_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  return p;
}

int32_t* device_ints(const std::vector<int32_t>& host) {
  int32_t* p = device_alloc<int32_t>(host.size());
  DSK_CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * 4, cudaMemcpyHostToDevice));
  return p;
}

void report(const char* kernel, int N, int keys, int grid_keys, double us) {
  std::printf("%-16s %5d %5d %9d %9.2f\n", kernel, N, keys, grid_keys, us);
  std::fflush(stdout);
}

void bench_rmsnorm(int N) {
  bf16* x = device_random<bf16>(size_t(N) * kHidden, 1);
  bf16* weight = device_random<bf16>(kHidden, 2);
  bf16* out = device_alloc<bf16>(size_t(N) * kHidden);
  float* rstd = device_alloc<float>(N);
  report("rmsnorm_forward", N, 0, 0, per_launch_us([&] {
           cuda::rmsnorm_forward<bf16>(out, rstd, x, weight, N, kHidden, 1e-6f, nullptr);
         }));
  for (void* p : {(void*)x, (void*)weight, (void*)out, (void*)rstd}) DSK_CUDA_CHECK(cudaFree(p));
}

void bench_rope(int N) {
  bf16* x = device_random<bf16>(size_t(N) * kHeads * kHeadDim, 3);
  std::vector<float> inv_freq(kHeadDim / 2);
  for (int i = 0; i < kHeadDim / 2; i++) inv_freq[i] = std::pow(10000.0f, -2.0f * i / kHeadDim);
  float* frequencies = device_alloc<float>(inv_freq.size());
  DSK_CUDA_CHECK(cudaMemcpy(frequencies, inv_freq.data(), inv_freq.size() * 4, cudaMemcpyHostToDevice));
  std::vector<int32_t> host_positions(N);
  for (int n = 0; n < N; n++) host_positions[n] = 129 + n % 7;
  int32_t* positions = device_ints(host_positions);
  const cuda::RopeDevice rope{frequencies, 1.0f, false};
  report("rope_forward(q)", N, 0, 0, per_launch_us([&] {
           cuda::rope_forward<bf16>(x, positions, rope, N, kHeads, kHeadDim, 0, kHeadDim, nullptr);
         }));
  for (void* p : {(void*)x, (void*)frequencies, (void*)positions}) DSK_CUDA_CHECK(cudaFree(p));
}

// `sequences` sequences of `keys` tokens each, the last `news` of each being this step's queries;
// the grid sized for grid_keys (>= keys: a graph replay's plan-wide longest).
void bench_paged_attention(int sequences, int news, int keys, int grid_keys) {
  const int N = sequences * news, max_blocks = (grid_keys + kBlockSize - 1) / kBlockSize;
  const size_t slots = size_t(sequences) * max_blocks * kBlockSize, row = size_t(kHeads) * kHeadDim;
  bf16* q = device_random<bf16>(size_t(N) * row, 4);
  bf16* k_pool = device_random<bf16>(slots * row, 5);
  bf16* v_pool = device_random<bf16>(slots * row, 6);
  bf16* out = device_alloc<bf16>(size_t(N) * row);
  std::vector<int32_t> tables(size_t(sequences) * max_blocks), sequence, positions;
  for (size_t b = 0; b < tables.size(); b++) tables[b] = int32_t(b);
  for (int s = 0; s < sequences; s++)
    for (int t = keys - news; t < keys; t++) {
      sequence.push_back(s);
      positions.push_back(t);
    }
  int32_t *d_tables = device_ints(tables), *d_sequence = device_ints(sequence), *d_positions = device_ints(positions);
  const cuda::PagedAttentionShape s{N,   kHeads,     kHeads,     kHeadDim, kHeadDim, int(row), int(row), int(row),
                                    kBlockSize, max_blocks, 1.0f / std::sqrt(float(kHeadDim)), grid_keys};
  float* scratch = device_alloc<float>(std::max<size_t>(1, cuda::paged_attention_scratch_floats(s)));
  unsigned* turns = device_alloc<unsigned>(size_t(cuda::paged_attention_turns()));
  DSK_CUDA_CHECK(cudaMemset(turns, 0, size_t(cuda::paged_attention_turns()) * sizeof(unsigned)));
  report("paged_attention", N, keys, grid_keys, per_launch_us([&] {
           cuda::paged_attention_forward<bf16>(out, q, k_pool, v_pool, d_tables, d_sequence, d_positions, s, scratch,
                                               turns, nullptr);
         }));
  for (void* p : {(void*)q, (void*)k_pool, (void*)v_pool, (void*)out, (void*)d_tables, (void*)d_sequence,
                  (void*)d_positions, (void*)scratch, (void*)turns})
    DSK_CUDA_CHECK(cudaFree(p));
}

}  // namespace

int main() {
  try {
    cudaDeviceProp properties{};
    DSK_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
    std::fprintf(stderr, "decode_kernels_bench: %s, bf16, llama-1b shape, us per launch (%d back to back), "
                 "median of %d\n", properties.name, kLaunches, kRuns);
    std::printf("%-16s %5s %5s %9s %9s\n", "kernel", "N", "keys", "grid_keys", "us");
    for (int N : {1, 32, 4096}) bench_rmsnorm(N);
    for (int N : {1, 32, 4096}) bench_rope(N);
    for (int keys : {1, 130, 1000}) bench_paged_attention(1, 1, keys, keys);
    bench_paged_attention(1, 1, 130, 4096);
    for (int keys : {130, 1000}) bench_paged_attention(32, 1, keys, keys);
    bench_paged_attention(32, 1, 130, 4096);
    bench_paged_attention(1, 512, 1000, 1000);  // a prefill chunk: 512 queries of one sequence
  } catch (const std::exception& error) {
    std::fprintf(stderr, "decode_kernels_bench: error: %s\n", error.what());
    return 4;
  }
  return 0;
}
