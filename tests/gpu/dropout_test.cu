// Scaled dropout (kernels/cuda/dropout.cu) against kernels/cpu/dropout.cpp: the same elements
// dropped (the mask bits are computed alike), on counts that are tiny, odd and large, with p = 0
// (a plain scale) and p > 0. Tolerance: exact. Each element is one fp32 product rounded to T, so
// the CPU's result rounded alike is what the GPU must store; backward adds into a T buffer.
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

TEST_CASE_TEMPLATE("dropout forward and backward drop what the CPU drops", T, float, bf16) {
  uint64_t seed = 900;
  for (const int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(8) * 1024 * 2048 + 3}) {
    for (const float p : {0.0f, 0.1f, 0.5f}) {
      CAPTURE(n);
      CAPTURE(p);
      const float factor = 1.7f / (1.0f - p);
      const uint32_t threshold = cpu::dropout_threshold(p);
      const std::vector<float> x = rounded<T>(random_floats(n, seed++)), g = rounded<T>(random_floats(n, seed++));
      std::vector<float> want(n), want_grad = g;
      cpu::dropout_forward(want.data(), x.data(), n, factor, threshold, 77);
      cpu::dropout_backward(want_grad.data(), x.data(), n, factor, threshold, 77);
      DeviceBuffer<T> dx(n), dout(n), dgrad(n);
      upload(dx, x);
      upload(dgrad, g);
      dout.poison();
      cuda::dropout_forward(dout.get(), dx.get(), n, factor, threshold, 77, nullptr);
      CHECK(download(dout) == rounded<T>(want));
      cuda::dropout_backward(dgrad.get(), dx.get(), n, factor, threshold, 77, nullptr);
      CHECK(download(dgrad) == rounded<T>(want_grad));
    }
  }
}
