// moe_bench: the routed experts' grouped GEMMs (kernels/cuda/grouped_matmul.cu) against the same
// products done by cuBLAS as one bf16 GEMM per expert (cublasGemmEx, fp32 accumulation), at the
// moe-16e bench shape: 8x1024 tokens routed top-4 over 16 experts (32768 rows), hidden 1024,
// moe_intermediate 512. For each projection (gate/up: 1024 -> 512; down: 512 -> 1024) it times the
// forward, backward_input and backward_weight products with CUDA events and prints ms and
// TFLOP/s (2 * rows * C * OC per product), and the relative L2 difference of dsk's result from
// cuBLAS's. cuBLAS needs every expert's row count on the host; the grouped kernels read them on
// the device.
//
//   moe_bench [--iterations N] [--tokens N] [--experts E] [--top-k K] [--hidden C] [--intermediate I]
//
// Build (from the repository root; one line):
//   nvcc -std=c++17 -O3 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib
//        scripts/bench/moe_bench.cu kernels/cuda/grouped_matmul.cu kernels/cuda/common.cu -lcublas -o moe_bench
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "cuda/moe.cuh"

namespace {

namespace cuda = dsk::kernels::cuda;
using cuda::bf16;

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) throw dsk::InternalError(dsk::str("cuBLAS: ", what, " failed: status ", int(status)));
}

struct Shape {
  int tokens = 8192, experts = 16, top_k = 4, hidden = 1024, intermediate = 512, iterations = 20;
};

Shape parse(int argc, char** argv) {
  Shape s;
  for (int i = 1; i < argc; i++) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw dsk::UsageError(dsk::str(flag, ": needs a value (see the comment atop moe_bench.cu)"));
    const int value = std::atoi(argv[++i]);
    if (value <= 0) throw dsk::UsageError(dsk::str(flag, ": expected a positive integer, got '", argv[i], "'"));
    if (flag == "--iterations") s.iterations = value;
    else if (flag == "--tokens") s.tokens = value;
    else if (flag == "--experts") s.experts = value;
    else if (flag == "--top-k") s.top_k = value;
    else if (flag == "--hidden") s.hidden = value;
    else if (flag == "--intermediate") s.intermediate = value;
    else throw dsk::UsageError(dsk::str("unknown flag ", flag));
  }
  if (s.top_k > s.experts) throw dsk::UsageError("--top-k must not exceed --experts");
  return s;
}

// Rows per expert when each token picks top_k distinct experts uniformly at random.
std::vector<int> expert_counts(const Shape& s) {
  std::mt19937_64 rng(1);
  std::vector<int> experts(s.experts), counts(s.experts, 0);
  for (int e = 0; e < s.experts; e++) experts[e] = e;
  for (int n = 0; n < s.tokens; n++) {
    std::shuffle(experts.begin(), experts.end(), rng);
    for (int k = 0; k < s.top_k; k++) counts[experts[k]]++;
  }
  return counts;
}

template <typename E>
struct Device {
  E* data = nullptr;
  size_t n = 0;
  explicit Device(size_t count) : n(count) { DSK_CUDA_CHECK(cudaMalloc(&data, count * sizeof(E))); }
  ~Device() { cudaFree(data); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  void zero() { DSK_CUDA_CHECK(cudaMemset(data, 0, n * sizeof(E))); }
  std::vector<float> floats() const {
    std::vector<E> host(n);
    DSK_CUDA_CHECK(cudaMemcpy(host.data(), data, n * sizeof(E), cudaMemcpyDeviceToHost));
    std::vector<float> out(n);
    for (size_t i = 0; i < n; i++) out[i] = cuda::to_float(host[i]);
    return out;
  }
};

void fill_random(Device<bf16>& buffer, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<bf16> host(buffer.n);
  for (bf16& x : host) x = cuda::from_float<bf16>(normal(rng));
  DSK_CUDA_CHECK(cudaMemcpy(buffer.data, host.data(), host.size() * sizeof(bf16), cudaMemcpyHostToDevice));
}

double relative_difference(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); i++) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff / (norm > 0 ? norm : 1));
}

// Mean milliseconds of `work` over `iterations` runs after two warm-up runs.
double time_ms(const std::function<void()>& work, int iterations) {
  for (int i = 0; i < 2; i++) work();
  cudaEvent_t start, stop;
  DSK_CUDA_CHECK(cudaEventCreate(&start));
  DSK_CUDA_CHECK(cudaEventCreate(&stop));
  DSK_CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < iterations; i++) work();
  DSK_CUDA_CHECK(cudaEventRecord(stop));
  DSK_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  DSK_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  DSK_CUDA_CHECK(cudaEventDestroy(start));
  DSK_CUDA_CHECK(cudaEventDestroy(stop));
  return ms / iterations;
}

// One projection of every expert: inp [rows, C] -> out [rows, OC] with W_e [OC, C].
struct Projection {
  const char* name;
  int C, OC;
};

struct Buffers {
  Device<bf16> inp, weight, out, dout, dinp;
  Device<float> dweight;
  Buffers(int rows, int E, const Projection& p)
      : inp((size_t)rows * p.C), weight((size_t)E * p.OC * p.C), out((size_t)rows * p.OC), dout((size_t)rows * p.OC),
        dinp((size_t)rows * p.C), dweight((size_t)E * p.OC * p.C) {}
};

// cuBLAS is column-major: the row-major products become, per expert e with r rows,
//   out^T [OC,r] = W_e [OC,C] . inp_e^T      dinp^T [C,r] += W_e^T . dout_e^T      dW_e^T [C,OC] += inp_e^T . dout_e
struct CublasExperts {
  cublasHandle_t handle;
  const std::vector<int>& counts;
  int C, OC;

  void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const bf16* a, int lda, const bf16* b,
            int ldb, float beta, void* c, cudaDataType c_type, int ldc) const {
    const float alpha = 1.0f;
    check_cublas(cublasGemmEx(handle, ta, tb, m, n, k, &alpha, a, CUDA_R_16BF, lda, b, CUDA_R_16BF, ldb, &beta, c,
                              c_type, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  }
  template <typename Each>
  void for_experts(Each each) const {
    int64_t row = 0;
    for (size_t e = 0; e < counts.size(); e++) {
      if (counts[e] > 0) each((int64_t)e, row, counts[e]);
      row += counts[e];
    }
  }
  void forward(Buffers& b) const {
    for_experts([&](int64_t e, int64_t row, int r) {
      gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, r, C, b.weight.data + e * OC * C, C, b.inp.data + row * C, C, 0.0f,
           b.out.data + row * OC, CUDA_R_16BF, OC);
    });
  }
  void backward_input(Buffers& b) const {
    for_experts([&](int64_t e, int64_t row, int r) {
      gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, r, OC, b.weight.data + e * OC * C, C, b.dout.data + row * OC, OC, 1.0f,
           b.dinp.data + row * C, CUDA_R_16BF, C);
    });
  }
  void backward_weight(Buffers& b) const {
    for_experts([&](int64_t e, int64_t row, int r) {
      gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, r, b.inp.data + row * C, C, b.dout.data + row * OC, OC, 1.0f,
           b.dweight.data + e * OC * C, CUDA_R_32F, C);
    });
  }
};

void print_row(const char* projection, const char* product, int rows, const Projection& p, double ms, double cublas_ms,
               double difference) {
  const double flops = 2.0 * rows * p.C * p.OC;
  std::printf("%-8s %-16s %6d x %5d -> %5d  %8.3f ms %7.1f TFLOP/s   %8.3f ms %7.1f TFLOP/s   %9.2e\n", projection,
              product, rows, p.C, p.OC, ms, flops / ms / 1e9, cublas_ms, flops / cublas_ms / 1e9, difference);
}

void bench_projection(const Shape& s, const Projection& p, const std::vector<int>& counts, const int32_t* offsets,
                      cublasHandle_t handle) {
  const int E = s.experts, rows = s.tokens * s.top_k;
  const int64_t stride = (int64_t)p.OC * p.C;
  Buffers b(rows, E, p);
  fill_random(b.inp, 1, 1.0f);
  fill_random(b.weight, 2, 1.0f / std::sqrt((float)p.C));
  fill_random(b.dout, 3, 1.0f);
  const CublasExperts blas{handle, counts, p.C, p.OC};

  auto ours_forward = [&] {
    cuda::grouped_matmul_forward(b.out.data, b.inp.data, b.weight.data, stride, offsets, E, rows, p.C, p.OC, 0);
  };
  auto ours_backward_input = [&] {
    cuda::grouped_matmul_backward_input(b.dinp.data, b.dout.data, b.weight.data, stride, offsets, E, rows, p.C, p.OC, 0);
  };
  auto ours_backward_weight = [&] {
    cuda::grouped_matmul_backward_weight(b.dweight.data, stride, b.dout.data, b.inp.data, offsets, E, rows, p.C, p.OC,
                                         0);
  };
  struct Case {
    const char* product;
    std::function<void()> ours, theirs;
    std::function<std::vector<float>()> result;
    std::function<void()> reset;
  };
  const Case cases[] = {
      {"forward", ours_forward, [&] { blas.forward(b); }, [&] { return b.out.floats(); }, [&] { b.out.zero(); }},
      {"backward_input", ours_backward_input, [&] { blas.backward_input(b); }, [&] { return b.dinp.floats(); },
       [&] { b.dinp.zero(); }},
      {"backward_weight", ours_backward_weight, [&] { blas.backward_weight(b); }, [&] { return b.dweight.floats(); },
       [&] { b.dweight.zero(); }},
  };
  for (const Case& c : cases) {
    c.reset();
    c.ours();
    const std::vector<float> ours = c.result();
    c.reset();
    c.theirs();
    const std::vector<float> theirs = c.result();
    const double ms = time_ms(c.ours, s.iterations), cublas_ms = time_ms(c.theirs, s.iterations);
    print_row(p.name, c.product, rows, p, ms, cublas_ms, relative_difference(ours, theirs));
  }
}

void run(const Shape& s) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) throw dsk::ResourceError("no CUDA device");
  const std::vector<int> counts = expert_counts(s);
  std::vector<int32_t> offsets(s.experts + 1, 0);
  for (int e = 0; e < s.experts; e++) offsets[e + 1] = offsets[e] + counts[e];
  Device<int32_t> offsets_d(offsets.size());
  DSK_CUDA_CHECK(cudaMemcpy(offsets_d.data, offsets.data(), offsets.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  cublasHandle_t handle;
  check_cublas(cublasCreate(&handle), "cublasCreate");
  cudaDeviceProp prop{};
  DSK_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# %s; %d tokens top-%d over %d experts (rows per expert %d..%d), %d iterations\n", prop.name, s.tokens,
              s.top_k, s.experts, *std::min_element(counts.begin(), counts.end()),
              *std::max_element(counts.begin(), counts.end()), s.iterations);
  std::printf("%-8s %-16s %-22s  %-27s   %-27s   %s\n", "proj", "product", "rows x C -> OC", "dsk grouped (1 launch)",
              "cuBLAS (1 GEMM per expert)", "rel. diff");
  bench_projection(s, {"gate/up", s.hidden, s.intermediate}, counts, offsets_d.data, handle);
  bench_projection(s, {"down", s.intermediate, s.hidden}, counts, offsets_d.data, handle);
  check_cublas(cublasDestroy(handle), "cublasDestroy");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    run(parse(argc, argv));
    return 0;
  } catch (const dsk::Error& e) {
    std::fprintf(stderr, "moe_bench: error: %s\n", e.what());
    return int(e.code());
  }
}
