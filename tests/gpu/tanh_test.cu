// tanh on the GPU (kernels/cuda/tanh.cu) against kernels/cpu/tanh.cpp: out, and din accumulated
// onto a random non-zero start, for counts that are tiny, not a multiple of the 16-byte width
// (the scalar path), not a multiple of the block, and a prefix-tuning MLP's hidden layer; and
// bit-identical reruns.
// Tolerance (relative L2, parity.cuh): 1e-5 for fp32, 1e-2 for bf16 storage.
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

// 128 x 4096: 128 virtual tokens through an encoder of 4096.
const int64_t kCounts[] = {1, 8, 13, 1000, 256 * 8 + 24, 128LL * 4096};

struct Outputs {
  std::vector<float> out, din;
};

template <typename T>
Outputs run_gpu(const std::vector<float>& in, const std::vector<float>& dout, const std::vector<float>& din_start) {
  const size_t n = in.size();
  DeviceBuffer<T> x(n), d(n), out(n), dx(n);
  upload(x, in);
  upload(d, dout);
  upload(dx, din_start);
  out.poison();
  cuda::tanh_forward(out.get(), x.get(), (int64_t)n, nullptr);
  cuda::tanh_backward(dx.get(), d.get(), out.get(), (int64_t)n, nullptr);
  return {download(out), download(dx)};
}

}  // namespace

TEST_CASE_TEMPLATE("tanh forward and backward match the CPU and repeat bit for bit", T, float, bf16) {
  uint64_t seed = 700;
  for (const int64_t n : kCounts) {
    CAPTURE(n);
    const std::vector<float> in = rounded<T>(random_floats(n, seed++, 3.0f));
    const std::vector<float> dout = rounded<T>(random_floats(n, seed++));
    const std::vector<float> din_start = rounded<T>(random_floats(n, seed++));
    std::vector<float> out(n), din = din_start;
    cpu::tanh_forward(out.data(), in.data(), n);
    // The GPU's backward reads its own (rounded) output: the CPU's reads the same values.
    const std::vector<float> out_rounded = rounded<T>(out);
    cpu::tanh_backward(din.data(), dout.data(), out_rounded.data(), n);

    const Outputs gpu = run_gpu<T>(in, dout, din_start);
    check_close("out", gpu.out, out, default_tolerance<T>());
    check_close("din", gpu.din, din, default_tolerance<T>());
    const Outputs again = run_gpu<T>(in, dout, din_start);
    CHECK(again.out == gpu.out);
    CHECK(again.din == gpu.din);
  }
}
