// Times the decode step's few-row products under several splits of the work, both the register
// kernels (kernels/cuda/gemv_kernels.cuh) and the shared-memory streaming ones (gemv_stream.cuh), as a 16-layer chain of llama-1b's shapes (RMSNorm, q/k/v, o, RMSNorm, gate/up with
// SwiGLU, down; then the LM head), the way a decode step runs them: back to back on one stream,
// the products launched as programmatic dependents. Every layer has its own weights (1.8 GB in
// all, far past L2), so each run reads them from memory as a decode step does. Prints, per split,
// the chain's time and the weights' bytes over it, against a device-to-device copy measured in
// the same run, and checks that every split's outputs equal the first split's bit for bit (the
// summation order does not depend on the split).
//
// Build (from the repository root; no CMake target):
//   nvcc -O3 -std=c++20 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib
//        scripts/bench/gemv_bench.cu kernels/cuda/rmsnorm.cu kernels/cuda/common.cu -o gemv_bench
// Run: ./gemv_bench [N]   (N rows, default 1)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cuda/elementwise.cuh"
#include "cuda/gemv_stream.cuh"
#include "cuda_timing.cuh"

namespace {

namespace kcuda = dsk::kernels::cuda;  // not `cuda`: libcu++ has a ::cuda
namespace gemv = dsk::kernels::cuda::gemv;
using kcuda::bf16;
using dsk::bench::device_random;

constexpr int kLayers = 16, kHidden = 2048, kIntermediate = 5504, kVocab = 32000;
constexpr int kRuns = 30;
constexpr float kEps = 1e-6f;

struct Layer {
  bf16 *q, *k, *v, *o, *gate, *up, *down, *norm1, *norm2;
};

struct Model {
  std::vector<Layer> layers;
  bf16* lm_head;
};

struct Activations {
  bf16 *x, *norm, *q, *k, *v, *act, *logits;
  float* rstd;
};

size_t weight_bytes() {
  const size_t per_layer = size_t(kHidden) * kHidden * 4 + size_t(kHidden) * kIntermediate * 3;
  return (per_layer * kLayers + size_t(kVocab) * kHidden) * sizeof(bf16);
}

Model random_model() {
  Model m;
  uint64_t seed = 1;
  auto matrix = [&](size_t rows, size_t columns) { return device_random<bf16>(rows * columns, seed++); };
  for (int l = 0; l < kLayers; l++)
    m.layers.push_back({matrix(kHidden, kHidden), matrix(kHidden, kHidden), matrix(kHidden, kHidden),
                        matrix(kHidden, kHidden), matrix(kIntermediate, kHidden), matrix(kIntermediate, kHidden),
                        matrix(kHidden, kIntermediate), matrix(1, kHidden), matrix(1, kHidden)});
  m.lm_head = matrix(kVocab, kHidden);
  return m;
}

Activations activations(int N) {
  Activations a;
  a.x = device_random<bf16>(size_t(N) * kHidden, 100);
  a.norm = device_random<bf16>(size_t(N) * kHidden, 101);
  a.q = device_random<bf16>(size_t(N) * kHidden, 102);
  a.k = device_random<bf16>(size_t(N) * kHidden, 103);
  a.v = device_random<bf16>(size_t(N) * kHidden, 104);
  a.act = device_random<bf16>(size_t(N) * kIntermediate, 105);
  a.logits = device_random<bf16>(size_t(N) * kVocab, 106);
  DSK_CUDA_CHECK(cudaMalloc(&a.rstd, sizeof(float) * N));
  return a;
}

// The residual stream starts from the same values in every run, so that outputs compare.
void reset(const Activations& a, const std::vector<bf16>& x0, cudaStream_t stream) {
  DSK_CUDA_CHECK(cudaMemcpyAsync(a.x, x0.data(), x0.size() * sizeof(bf16), cudaMemcpyHostToDevice, stream));
}

// The register kernels of gemv_kernels.cuh under a split.
template <typename Split>
struct RegisterKernels {
  static constexpr bool kNormFused = false;  // decode_chain passes norm = null
  static std::string name() {
    return "registers: columns " + std::to_string(Split::kColumns) + ", unroll " + std::to_string(Split::kUnroll) +
           ", warps " + std::to_string(Split::kWarps);
  }
  static void parts(const kcuda::GemvPart<bf16>* p, int count, const bf16* inp, int N, int C, cudaStream_t stream,
                    const bf16*) {
    gemv::launch_gemv_parts<bf16, Split>(p, count, inp, N, C, stream);
  }
  static void product(bf16* out, const bf16* inp, const bf16* w, int N, int C, int OC, bool accumulate,
                      cudaStream_t stream, const bf16*) {
    gemv::launch_gemv<bf16, Split>(out, inp, w, nullptr, N, C, OC, accumulate, stream);
  }
  static void swiglu(bf16* out, const bf16* inp, const bf16* gate, const bf16* up, int N, int C, int I,
                     cudaStream_t stream, const bf16*) {
    gemv::launch_gemv_swiglu<bf16, Split>(out, inp, gate, up, N, C, I, stream);
  }
};

// The streaming kernels of gemv_stream.cuh under a split; NORM_FUSED: each RMSNorm runs inside
// the product that reads it (no RMSNorm kernels).
template <typename Split, bool NORM_FUSED = false>
struct StreamKernels {
  static constexpr bool kNormFused = NORM_FUSED;
  static std::string name() {
    return "stream: warps " + std::to_string(Split::kWarps) + ", stages " + std::to_string(Split::kStages) + " x " +
           std::to_string(Split::kStageBytes / 1024) + " KB, " + std::to_string(Split::kBlocksPerSm) + "/SM" +
           (NORM_FUSED ? ", norm fused" : "");
  }
  static void check(bool launched) {
    if (!launched) throw std::runtime_error("this device cannot stream " + name());
  }
  static void parts(const kcuda::GemvPart<bf16>* p, int count, const bf16* inp, int N, int C, cudaStream_t stream,
                    const bf16* norm) {
    check(gemv::stream_gemv_parts<bf16, Split>(p, count, inp, N, C, stream, norm, kEps));
  }
  static void product(bf16* out, const bf16* inp, const bf16* w, int N, int C, int OC, bool accumulate,
                      cudaStream_t stream, const bf16* norm) {
    check(gemv::stream_gemv<bf16, Split>(out, inp, w, nullptr, N, C, OC, accumulate, stream, norm, kEps));
  }
  static void swiglu(bf16* out, const bf16* inp, const bf16* gate, const bf16* up, int N, int C, int I,
                     cudaStream_t stream, const bf16* norm) {
    check(gemv::stream_gemv_swiglu<bf16, Split>(out, inp, gate, up, N, C, I, stream, norm, kEps));
  }
};

// RMSNorm of the residual stream into a.norm, unless the kernels fuse it into the product that
// reads it; returns what that product reads, and the norm weight it applies (null: none).
template <typename Kernels>
std::pair<const bf16*, const bf16*> norm_input(const Activations& a, const bf16* weight, int N, cudaStream_t stream) {
  if (Kernels::kNormFused) return {a.x, weight};
  kcuda::rmsnorm_forward<bf16>(a.norm, a.rstd, a.x, weight, N, kHidden, kEps, stream);
  return {a.norm, nullptr};
}

template <typename Kernels>
void decode_chain(const Model& m, const Activations& a, int N, cudaStream_t stream) {
  for (const Layer& l : m.layers) {
    const kcuda::GemvPart<bf16> parts[3] = {
        {a.q, l.q, nullptr, kHidden}, {a.k, l.k, nullptr, kHidden}, {a.v, l.v, nullptr, kHidden}};
    auto [qkv_input, norm1] = norm_input<Kernels>(a, l.norm1, N, stream);
    Kernels::parts(parts, 3, qkv_input, N, kHidden, stream, norm1);
    // Attention would read q, k and v here; the chain feeds v to the o projection instead.
    Kernels::product(a.x, a.v, l.o, N, kHidden, kHidden, true, stream, nullptr);
    auto [mlp_input, norm2] = norm_input<Kernels>(a, l.norm2, N, stream);
    Kernels::swiglu(a.act, mlp_input, l.gate, l.up, N, kHidden, kIntermediate, stream, norm2);
    Kernels::product(a.x, a.act, l.down, N, kIntermediate, kHidden, true, stream, nullptr);
  }
  auto [head_input, final_norm] = norm_input<Kernels>(a, m.layers[0].norm1, N, stream);
  Kernels::product(a.logits, head_input, m.lm_head, N, kHidden, kVocab, false, stream, final_norm);
}

std::vector<uint16_t> download_bits(const bf16* device, size_t n) {
  std::vector<uint16_t> host(n);
  DSK_CUDA_CHECK(cudaMemcpy(host.data(), device, n * sizeof(bf16), cudaMemcpyDeviceToHost));
  return host;
}

// Median ms of the chain; the reset of the residual stream before each run is not timed.
template <typename Kernels>
double time_chain(const Model& m, const Activations& a, int N, const std::vector<bf16>& x0, cudaStream_t stream) {
  cudaEvent_t start, stop;
  DSK_CUDA_CHECK(cudaEventCreate(&start));
  DSK_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> times;
  for (int run = 0; run < kRuns + 3; run++) {
    reset(a, x0, stream);
    DSK_CUDA_CHECK(cudaEventRecord(start, stream));
    decode_chain<Kernels>(m, a, N, stream);
    DSK_CUDA_CHECK(cudaEventRecord(stop, stream));
    DSK_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    DSK_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (run >= 3) times.push_back(ms);
  }
  DSK_CUDA_CHECK(cudaEventDestroy(start));
  DSK_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Bytes read + written per second of a 1 GiB device-to-device copy (the bound's bandwidth).
double copy_bandwidth(cudaStream_t stream) {
  const size_t bytes = size_t(1) << 30;
  void *from = nullptr, *to = nullptr;
  DSK_CUDA_CHECK(cudaMalloc(&from, bytes));
  DSK_CUDA_CHECK(cudaMalloc(&to, bytes));
  const double ms = dsk::bench::median_ms([&] { DSK_CUDA_CHECK(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, 0)); });
  cudaFree(from);
  cudaFree(to);
  (void)stream;
  return 2.0 * double(bytes) / (ms * 1e-3);
}

struct Result {
  std::string name;
  double ms;
  bool same_bits;
};

template <typename Kernels>
Result run_split(const Model& m, const Activations& a, int N, const std::vector<bf16>& x0, cudaStream_t stream,
                 std::vector<uint16_t>& reference) {
  const double ms = time_chain<Kernels>(m, a, N, x0, stream);
  reset(a, x0, stream);
  decode_chain<Kernels>(m, a, N, stream);
  DSK_CUDA_CHECK(cudaStreamSynchronize(stream));
  const std::vector<uint16_t> logits = download_bits(a.logits, size_t(N) * kVocab);
  if (reference.empty()) reference = logits;
  return {Kernels::name(), ms, logits == reference};
}

template <int COLUMNS, int UNROLL, int WARPS>
using Registers = RegisterKernels<gemv::GemvSplit<COLUMNS, UNROLL, WARPS>>;
template <int WARPS, int STAGES, int STAGE_KB, int BLOCKS_PER_SM = 1, bool NORM_FUSED = false>
using Stream = StreamKernels<gemv::StreamSplit<WARPS, STAGES, STAGE_KB * 1024, BLOCKS_PER_SM>, NORM_FUSED>;

}  // namespace

int main(int argc, char** argv) {
  try {
    const int N = argc > 1 ? std::atoi(argv[1]) : 1;
    if (N < 1 || N > kcuda::kGemvMaxRows) {
      std::fprintf(stderr, "gemv_bench: N must be 1..%d\n", kcuda::kGemvMaxRows);
      return 2;
    }
    cudaStream_t stream;
    DSK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const Model m = random_model();
    const Activations a = activations(N);
    std::vector<bf16> x0(size_t(N) * kHidden);
    DSK_CUDA_CHECK(cudaMemcpy(x0.data(), a.x, x0.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
    for (bf16& x : x0) x = kcuda::from_float<bf16>(kcuda::to_float(x) * 0.01f);  // keep 16 residual adds finite
    const double bandwidth = copy_bandwidth(stream), bytes = double(weight_bytes());
    std::printf("gemv_bench: llama-1b decode chain, N %d, %d layers, weights %.3f GB; copy %.3f TB/s: bound %.3f ms\n",
                N, kLayers, bytes / 1e9, bandwidth / 1e12, bytes / bandwidth * 1e3);
    std::vector<uint16_t> reference;
    const std::vector<Result> results = {
        run_split<Registers<1, 4, 8>>(m, a, N, x0, stream, reference),
        run_split<Registers<1, 2, 8>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 2, 48, 2>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 2, 48, 1>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 3, 32, 2>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 2, 32, 3>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 2, 40, 2>>(m, a, N, x0, stream, reference),
        run_split<Stream<16, 2, 48, 2>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 2, 24, 2>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 2, 48, 2, true>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 3, 32, 2, true>>(m, a, N, x0, stream, reference),
        run_split<Stream<8, 2, 32, 3, true>>(m, a, N, x0, stream, reference),
    };
    std::printf("%-52s %9s %9s %8s %s\n", "split", "chain_ms", "TB/s", "of_bound", "bits");
    for (const Result& r : results)
      std::printf("%-52s %9.3f %9.3f %8.3f %s\n", r.name.c_str(), r.ms, bytes / (r.ms * 1e-3) / 1e12,
                  bytes / bandwidth * 1e3 / r.ms, r.same_bits ? "same" : "DIFFERENT");
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gemv_bench: error: %s\n", error.what());
    return 1;
  }
}
