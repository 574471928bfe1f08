// RMSNorm on the GPU (kernels/cuda/rmsnorm.cu) against kernels/cpu/rmsnorm.cpp: the forward's out
// and rstd, the backward's dinp and dweight accumulated onto random non-zero starts, over tiny
// fixture widths, odd sizes (the scalar path), the bench shapes and a width whose per-warp dweight
// row is over 48 KB of shared memory, decode shapes (N = 1, 32); bit-identical reruns, and a row's
// forward bits do not depend on the rows beside it (a decode row = the same row in a large batch).
// Tolerances (relative L2, parity.cuh): out and dinp 1e-5 for fp32, 1e-2 for bf16 storage; rstd
// and dweight are fp32 for both element types: 1e-5.
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

constexpr double kFp32Tolerance = 1e-5;
constexpr float kEps = 1e-6f;

struct Shape {
  int N, C;
};
const Shape kShapes[] = {
    {1, 8},     {3, 16},     {7, 32},      {37, 24},  // tiny fixtures, N not a multiple of a block's rows
    {100, 200}, {65, 13},    {9, 1},                  // C an odd multiple of 8; C odd: the scalar path
    {16384, 768}, {8192, 1024}, {8192, 512}, {8192, 256}, {2048, 2048},  // bench: dense-124m, moe-16e, llama-1b
    {33, 20000},  // per-warp dweight row of 80 KB: the opt-in shared-memory path
    {1, 2048}, {32, 2048}, {1, 5000},  // decode rows: llama-1b, batch 32, a row of several load batches
};

std::vector<float> weights(int C, uint64_t seed) {
  std::vector<float> w = random_floats(C, seed, 0.1f);
  for (float& x : w) x += 1.0f;
  return w;
}

struct Run {
  std::vector<float> out, rstd, dinp, dweight;
};

// One forward and backward on the GPU from the given inputs and gradient starts.
template <typename T>
Run run_gpu(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dout,
               const std::vector<float>& dinp_start, const std::vector<float>& dweight_start, Shape s) {
  const size_t n = (size_t)s.N * s.C;
  DeviceBuffer<T> inp(n), weight(s.C), out(n), dy(n), dinp(n);
  DeviceBuffer<float> rstd(s.N), dweight(s.C), scratch(cuda::rmsnorm_backward_scratch_floats(s.N, s.C));
  upload(inp, x);
  upload(weight, w);
  upload(dy, dout);
  upload(dinp, dinp_start);
  upload(dweight, dweight_start);
  out.poison();
  rstd.poison();
  scratch.poison();  // every partial the sum reads must have been written
  cuda::rmsnorm_forward(out.get(), rstd.get(), inp.get(), weight.get(), s.N, s.C, kEps, nullptr);
  cuda::rmsnorm_backward(dinp.get(), dweight.get(), dy.get(), inp.get(), weight.get(), rstd.get(), s.N, s.C,
                         scratch.get(), nullptr);
  return {download(out), download(rstd), download(dinp), download(dweight)};
}

}  // namespace

TEST_CASE_TEMPLATE("rmsnorm forward and backward match the CPU and repeat bit for bit", T, float, bf16) {
  uint64_t seed = 100;
  for (const Shape s : kShapes) {
    CAPTURE(s.N);
    CAPTURE(s.C);
    const size_t n = (size_t)s.N * s.C;
    const std::vector<float> x = rounded<T>(random_floats(n, seed++));
    const std::vector<float> w = rounded<T>(weights(s.C, seed++));
    const std::vector<float> dout = rounded<T>(random_floats(n, seed++));
    const std::vector<float> dinp_start = rounded<T>(random_floats(n, seed++));
    const std::vector<float> dweight_start = random_floats(s.C, seed++);

    std::vector<float> out(n), rstd(s.N), dinp = dinp_start, dweight = dweight_start;
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), s.N, s.C, kEps);
    cpu::rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), x.data(), w.data(), rstd.data(), s.N, s.C);

    const Run gpu = run_gpu<T>(x, w, dout, dinp_start, dweight_start, s);
    check_close("out", gpu.out, out, default_tolerance<T>());
    check_close("rstd", gpu.rstd, rstd, kFp32Tolerance);
    check_close("dinp", gpu.dinp, dinp, default_tolerance<T>());
    check_close("dweight", gpu.dweight, dweight, kFp32Tolerance);

    const Run again = run_gpu<T>(x, w, dout, dinp_start, dweight_start, s);
    CHECK(again.out == gpu.out);
    CHECK(again.rstd == gpu.rstd);
    CHECK(again.dinp == gpu.dinp);
    CHECK(again.dweight == gpu.dweight);
  }
}

TEST_CASE_TEMPLATE("rmsnorm backward without a weight gradient leaves dinp as with one", T, float, bf16) {
  const Shape s{50, 96};
  const size_t n = (size_t)s.N * s.C;
  const std::vector<float> x = rounded<T>(random_floats(n, 1)), w = rounded<T>(weights(s.C, 2));
  const std::vector<float> dout = rounded<T>(random_floats(n, 3)), dinp_start = rounded<T>(random_floats(n, 4));
  std::vector<float> out(n), rstd(s.N), dinp = dinp_start, dweight(s.C, 0.0f);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), s.N, s.C, kEps);
  cpu::rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), x.data(), w.data(), rstd.data(), s.N, s.C);

  DeviceBuffer<T> inp(n), weight(s.C), dy(n), dx(n);
  DeviceBuffer<float> r(s.N);
  upload(inp, x);
  upload(weight, w);
  upload(dy, dout);
  upload(dx, dinp_start);
  upload(r, rstd);
  cuda::rmsnorm_backward(dx.get(), (float*)nullptr, dy.get(), inp.get(), weight.get(), r.get(), s.N, s.C, nullptr,
                         nullptr);
  check_close("dinp", download(dx), dinp, default_tolerance<T>());
}

TEST_CASE_TEMPLATE("rmsnorm forward gives a row the same bits alone as inside a large batch", T, float, bf16) {
  for (const int C : {2048, 5000, 13}) {
    CAPTURE(C);
    const Shape batch{4096, C};
    const std::vector<float> x = rounded<T>(random_floats((size_t)batch.N * C, 7));
    const std::vector<float> w = rounded<T>(weights(C, 8));
    const std::vector<float> zeros((size_t)batch.N * C, 0.0f), no_dweight(C, 0.0f);
    const Run all = run_gpu<T>(x, w, zeros, zeros, no_dweight, batch);
    const int row = 1234;
    const std::vector<float> one_row(x.begin() + (int64_t)row * C, x.begin() + (int64_t)(row + 1) * C);
    const std::vector<float> one_zero(C, 0.0f);
    const Run alone = run_gpu<T>(one_row, w, one_zero, one_zero, no_dweight, Shape{1, C});
    const auto first = all.out.begin() + (int64_t)row * C;
    CHECK(alone.out == std::vector<float>(first, first + C));
    CHECK(alone.rstd[0] == all.rstd[row]);
  }
}
