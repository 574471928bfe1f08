// SwiGLU on the GPU (kernels/cuda/swiglu.cu) against kernels/cpu/swiglu.cpp: out, and dgate and
// dup accumulated onto random non-zero starts, for counts that are tiny, not a multiple of the
// 16-byte width (the scalar path), not a multiple of the block, and the bench MLP activations;
// and bit-identical reruns.
// Tolerance (relative L2, parity.cuh): 1e-5 for fp32, 1e-2 for bf16 storage.
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

// 16384 x 2048: dense-124m's MLP; 8192 x 4 x 512: moe-16e's routed experts; 1000 x 5504: llama-1b.
const int64_t kCounts[] = {1, 8, 13, 1000, 256 * 8 + 24, 16384LL * 2048, 8192LL * 4 * 512, 1000LL * 5504};

struct Outputs {
  std::vector<float> out, dgate, dup;
};

template <typename T>
Outputs run_gpu(const std::vector<float>& gate, const std::vector<float>& up, const std::vector<float>& dout,
                const std::vector<float>& dgate_start, const std::vector<float>& dup_start) {
  const size_t n = gate.size();
  DeviceBuffer<T> g(n), u(n), d(n), out(n), dg(n), du(n);
  upload(g, gate);
  upload(u, up);
  upload(d, dout);
  upload(dg, dgate_start);
  upload(du, dup_start);
  out.poison();
  cuda::swiglu_forward(out.get(), g.get(), u.get(), (int64_t)n, nullptr);
  cuda::swiglu_backward(dg.get(), du.get(), d.get(), g.get(), u.get(), (int64_t)n, nullptr);
  return {download(out), download(dg), download(du)};
}

}  // namespace

TEST_CASE_TEMPLATE("swiglu forward and backward match the CPU and repeat bit for bit", T, float, bf16) {
  uint64_t seed = 300;
  for (const int64_t n : kCounts) {
    CAPTURE(n);
    const std::vector<float> gate = rounded<T>(random_floats(n, seed++, 2.0f));
    const std::vector<float> up = rounded<T>(random_floats(n, seed++));
    const std::vector<float> dout = rounded<T>(random_floats(n, seed++));
    const std::vector<float> dgate_start = rounded<T>(random_floats(n, seed++));
    const std::vector<float> dup_start = rounded<T>(random_floats(n, seed++));
    std::vector<float> out(n), dgate = dgate_start, dup = dup_start;
    cpu::swiglu_forward(out.data(), gate.data(), up.data(), n);
    cpu::swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);

    const Outputs gpu = run_gpu<T>(gate, up, dout, dgate_start, dup_start);
    check_close("out", gpu.out, out, default_tolerance<T>());
    check_close("dgate", gpu.dgate, dgate, default_tolerance<T>());
    check_close("dup", gpu.dup, dup, default_tolerance<T>());
    const Outputs again = run_gpu<T>(gate, up, dout, dgate_start, dup_start);
    CHECK(again.out == gpu.out);
    CHECK(again.dgate == gpu.dgate);
    CHECK(again.dup == gpu.dup);
  }
}
