// The optimizer's GPU half (kernels/cuda/adamw.cu) against kernels/cpu/adamw.cpp, the reference
// lib/train's AdamW runs on the CPU backend: several fused steps with and without a decay mask and
// a working copy, on counts that are tiny, not a multiple of 4 (the scalar path) and large; the
// gradient's sum of squares (the clipping norm) and the scaling.
// Tolerances: the fp32 state after the steps is exact (same operations, each rounded alone, the
// bias corrections divided in double), the working copy is exactly the params rounded to T, the
// scaling is exact; the sum of squares (fp32 result of a double sum) 1e-6 relative.
#include <cmath>

#include "cpu/kernels.hpp"
#include "cuda/adamw.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

constexpr double kSumTolerance = 1e-6;
constexpr int kSteps = 3;
const int64_t kCounts[] = {1, 7, 8, 1003, 1 << 20, 10'000'001};

std::vector<uint8_t> random_mask(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> mask(n);
  for (uint8_t& flag : mask) flag = (uint8_t)(rng() % 4 != 0);
  return mask;
}

// Step t (1-based) of the usual settings, at a learning rate that changes from step to step.
cpu::AdamWStep cpu_step(int t) {
  cpu::AdamWStep s;
  s.lr = 1e-3f / t;
  s.beta1 = 0.9f;
  s.beta2 = 0.95f;
  s.eps = 1e-8f;
  s.weight_decay = 0.1f;
  s.bias_correction1 = 1.0 - std::pow(double(s.beta1), double(t));
  s.bias_correction2 = 1.0 - std::pow(double(s.beta2), double(t));
  return s;
}

cuda::AdamWStep gpu_step(const cpu::AdamWStep& s) {
  return {s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.bias_correction1, s.bias_correction2};
}

template <typename E>
void copy_to_device(DeviceBuffer<E>& buffer, const std::vector<E>& host) {
  DSK_CUDA_CHECK(cudaMemcpy(buffer.get(), host.data(), host.size() * sizeof(E), cudaMemcpyHostToDevice));
}

}  // namespace

TEST_CASE_TEMPLATE("adamw_step equals the CPU's step bit for bit and refreshes the working copy", T, float, bf16) {
  uint64_t seed = 900;
  for (const int64_t n : kCounts) {
    for (const bool masked : {false, true}) {
      for (const bool with_working : {true, false}) {
        CAPTURE(n);
        CAPTURE(masked);
        CAPTURE(with_working);
        std::vector<float> params = random_floats(n, seed++, 0.02f), m(n, 0.0f), v(n, 0.0f);
        const std::vector<uint8_t> mask = masked ? random_mask(n, seed++) : std::vector<uint8_t>{};
        DeviceBuffer<float> dparams(n), dgrads(n), dm(n), dv(n);
        DeviceBuffer<T> working(n);
        DeviceBuffer<uint8_t> dmask(mask.size());
        upload(dparams, params);
        upload(dm, m);
        upload(dv, v);
        if (masked) copy_to_device(dmask, mask);
        for (int t = 1; t <= kSteps; t++) {
          const std::vector<float> grads = random_floats(n, seed++, 0.01f);
          const cpu::AdamWStep s = cpu_step(t);
          cpu::adamw_step(params.data(), grads.data(), m.data(), v.data(), masked ? mask.data() : nullptr, n, s);
          upload(dgrads, grads);
          working.poison();
          cuda::adamw_step(dparams.get(), with_working ? working.get() : nullptr, dgrads.get(), dm.get(), dv.get(),
                           masked ? dmask.get() : nullptr, n, gpu_step(s), nullptr);
        }
        const std::vector<float> got = download(dparams);
        CHECK(got == params);
        CHECK(download(dm) == m);
        CHECK(download(dv) == v);
        if (with_working) CHECK(download(working) == rounded<T>(got));
      }
    }
  }
}

TEST_CASE("grad_sum_of_squares matches the CPU's double sum and repeats bit for bit; scale_floats equals the CPU's") {
  uint64_t seed = 950;
  // 124M: dense-124m's parameter count.
  for (const int64_t n : {int64_t(1), int64_t(5), int64_t(1000), int64_t((1 << 20) + 3), int64_t(124'000'000)}) {
    CAPTURE(n);
    std::vector<float> grads = random_floats(n, seed++, 1e-3f);
    DeviceBuffer<float> dgrads(n), sum(1), scratch(cuda::grad_norm_scratch_floats(n));
    upload(dgrads, grads);
    scratch.poison();
    sum.poison();
    cuda::grad_sum_of_squares(sum.get(), dgrads.get(), n, scratch.get(), nullptr);
    const std::vector<float> first = download(sum);
    check_close("sum of squares", first, {(float)cpu::sum_of_squares(grads.data(), n)}, kSumTolerance);
    cuda::grad_sum_of_squares(sum.get(), dgrads.get(), n, scratch.get(), nullptr);
    CHECK(download(sum) == first);

    const float factor = 0.37f;
    cpu::scale(grads.data(), factor, n);
    cuda::scale_floats(dgrads.get(), factor, n, nullptr);
    CHECK(download(dgrads) == grads);
  }
}
