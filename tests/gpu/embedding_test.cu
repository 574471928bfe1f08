// Token embedding on the GPU (kernels/cuda/embedding.cu) against kernels/cpu/embedding.cpp: the
// forward's rows, and the backward's dtable accumulated onto a random non-zero start, with
// repeated tokens (a few frequent ids, one id filling a whole batch), tiny fixture widths, an odd
// width (the scalar path) and the bench shapes; and bit-identical reruns (the sort makes the sum
// order fixed).
// Tolerances (relative L2, parity.cuh): out 1e-5 for fp32, 1e-2 for bf16 storage (in practice a
// copy: exact); dtable is fp32 for both element types: 1e-5.
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

constexpr double kFp32Tolerance = 1e-5;

struct Shape {
  int N, C, V;
  int frequent;  // ids below this take ~30% of the positions (0: uniform)
};
const Shape kShapes[] = {
    {5, 8, 11, 2},      {37, 13, 5, 0},     {300, 24, 7, 0},  {64, 16, 3, 1}, {33, 32, 1000, 4},
    {16384, 768, 32000, 10},  // bench dense-124m
    {8192, 1024, 32000, 10},  // bench moe-16e
    {4096, 40, 50, 1},        // half the batch one id: a run of ~2000 rows
};

std::vector<int32_t> random_tokens(const Shape& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(s.N);
  for (int32_t& t : tokens) {
    const bool common = s.frequent > 0 && rng() % 10 < (s.frequent == 1 ? 5u : 3u);
    t = (int32_t)(common ? rng() % s.frequent : rng() % s.V);
  }
  return tokens;
}

struct Outputs {
  std::vector<float> out, dtable;
};

template <typename T>
Outputs run_gpu(const std::vector<float>& table, const std::vector<int32_t>& tokens, const std::vector<float>& dout,
                const std::vector<float>& dtable_start, const Shape& s) {
  DeviceBuffer<T> t(table.size()), out((size_t)s.N * s.C), dy(dout.size());
  DeviceBuffer<int32_t> ids(tokens.size());
  DeviceBuffer<float> dtable(dtable_start.size());
  DeviceBuffer<unsigned char> scratch(cuda::embedding_backward_scratch_bytes(s.N, s.V));
  upload(t, table);
  upload(dy, dout);
  upload(dtable, dtable_start);
  DSK_CUDA_CHECK(cudaMemcpy(ids.get(), tokens.data(), tokens.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  out.poison();
  scratch.poison();
  cuda::embedding_forward(out.get(), ids.get(), t.get(), s.N, s.C, nullptr);
  cuda::embedding_backward(dtable.get(), dy.get(), ids.get(), s.N, s.C, s.V, scratch.get(), nullptr);
  return {download(out), download(dtable)};
}

}  // namespace

TEST_CASE_TEMPLATE("embedding forward and backward match the CPU and repeat bit for bit", T, float, bf16) {
  uint64_t seed = 400;
  for (const Shape& s : kShapes) {
    CAPTURE(s.N);
    CAPTURE(s.C);
    CAPTURE(s.V);
    const std::vector<float> table = rounded<T>(random_floats((size_t)s.V * s.C, seed++));
    const std::vector<int32_t> tokens = random_tokens(s, seed++);
    const std::vector<float> dout = rounded<T>(random_floats((size_t)s.N * s.C, seed++));
    const std::vector<float> dtable_start = random_floats((size_t)s.V * s.C, seed++);
    std::vector<float> out((size_t)s.N * s.C), dtable = dtable_start;
    cpu::embedding_forward(out.data(), tokens.data(), table.data(), s.N, s.C);
    cpu::embedding_backward(dtable.data(), dout.data(), tokens.data(), s.N, s.C);

    const Outputs gpu = run_gpu<T>(table, tokens, dout, dtable_start, s);
    check_close("out", gpu.out, out, default_tolerance<T>());
    check_close("dtable", gpu.dtable, dtable, kFp32Tolerance);
    const Outputs again = run_gpu<T>(table, tokens, dout, dtable_start, s);
    CHECK(again.out == gpu.out);
    CHECK(again.dtable == gpu.dtable);
  }
}

TEST_CASE("embedding backward skips ids outside the vocabulary instead of writing out of bounds") {
  const Shape s{6, 8, 4, 0};
  const std::vector<int32_t> tokens = {1, -3, 2, 4, 1, 1000};
  const std::vector<float> dout = random_floats((size_t)s.N * s.C, 7);
  // dtable [V, C] followed by rows up to id 1000, which must stay zero.
  std::vector<float> dtable((size_t)1001 * s.C, 0.0f);
  for (int n = 0; n < s.N; n++)
    if (tokens[n] >= 0 && tokens[n] < s.V)
      for (int c = 0; c < s.C; c++) dtable[(size_t)tokens[n] * s.C + c] += dout[(size_t)n * s.C + c];

  DeviceBuffer<float> dy(dout.size()), dt(dtable.size());
  DeviceBuffer<int32_t> ids(tokens.size());
  DeviceBuffer<unsigned char> scratch(cuda::embedding_backward_scratch_bytes(s.N, s.V));
  upload(dy, dout);
  upload(dt, std::vector<float>(dtable.size(), 0.0f));
  DSK_CUDA_CHECK(cudaMemcpy(ids.get(), tokens.data(), tokens.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  cuda::embedding_backward(dt.get(), dy.get(), ids.get(), s.N, s.C, s.V, scratch.get(), nullptr);
  const std::vector<float> got = download(dt);
  check_close("dtable", got, dtable, kFp32Tolerance);
  CHECK(std::vector<float>(got.begin() + s.V * s.C, got.end()) == std::vector<float>(got.size() - s.V * s.C, 0.0f));
}
