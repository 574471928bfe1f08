// int8 gradient compression (kernels/cuda/grad_quantize.cu) against kernels/cpu/grad_quantize.cpp:
// levels, scales, the error-feedback residual and the dequantized sum over ranks. Tolerance:
// exact (every fp32 operation is rounded alone on both sides), on counts that are tiny, not a
// multiple of the chunk, and large, with a chunk holding an Inf (scale NaN on both, levels and
// residual 0).
#include <cstring>

#include "cpu/kernels.hpp"
#include "cuda/grad_quantize.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

std::vector<int8_t> download_levels(const DeviceBuffer<int8_t>& buffer) {
  DSK_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<int8_t> out(buffer.size());
  DSK_CUDA_CHECK(cudaMemcpy(out.data(), buffer.get(), out.size(), cudaMemcpyDeviceToHost));
  return out;
}

// Equal bit for bit, except that any NaN equals any NaN (the two sides spell NaN differently).
bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("int8 quantization with and without error feedback gives the CPU's levels, scales and residual") {
  uint64_t seed = 1400;
  for (const int64_t n : {int64_t(1), int64_t(1000), int64_t(5000), int64_t(8) * 1024 * 1024 + 17}) {
    for (const bool feedback : {true, false}) {
      CAPTURE(n);
      CAPTURE(feedback);
      const int chunk = 1024;
      const int64_t chunks = cpu::quantize_chunks(n, chunk);
      std::vector<float> values = random_floats(size_t(n), seed++, 0.01f);
      if (n > 2000) values[1500] = INFINITY;  // the second chunk is not finite
      std::vector<float> residual = random_floats(size_t(n), seed++, 1e-4f);
      std::vector<int8_t> want_q(static_cast<size_t>(n));
      std::vector<float> want_scales(static_cast<size_t>(chunks)), want_residual = residual;
      cpu::quantize_int8(want_q.data(), want_scales.data(), values.data(), feedback ? want_residual.data() : nullptr, n,
                         chunk);

      const size_t count = static_cast<size_t>(n);
      DeviceBuffer<float> d_values(count), d_residual(count), d_scales(static_cast<size_t>(chunks));
      DeviceBuffer<int8_t> d_q(static_cast<size_t>(n));
      upload(d_values, values);
      upload(d_residual, residual);
      d_scales.poison();
      d_q.poison();
      cuda::quantize_int8(d_q.get(), d_scales.get(), d_values.get(), feedback ? d_residual.get() : nullptr, n, chunk,
                          nullptr);
      CHECK(download_levels(d_q) == want_q);
      CHECK(same_floats(download(d_scales), want_scales));
      CHECK(same_floats(download(d_residual), feedback ? want_residual : residual));
    }
  }
}

TEST_CASE("the dequantized sum over ranks is the CPU's") {
  uint64_t seed = 1500;
  for (const int ranks : {1, 2, 8}) {
    for (const int64_t n : {int64_t(7), int64_t(3 * 1024 + 5), int64_t(2) * 1024 * 1024}) {
      CAPTURE(ranks);
      CAPTURE(n);
      const int chunk = 1024;
      const int64_t chunks = cpu::quantize_chunks(n, chunk);
      std::vector<int8_t> q(size_t(ranks * n));
      std::mt19937_64 rng(seed++);
      for (int8_t& level : q) level = int8_t(int(rng() % 255) - 127);
      const std::vector<float> scales = random_floats(size_t(ranks * chunks), seed++, 1e-3f);
      std::vector<float> want(static_cast<size_t>(n));
      cpu::dequantize_sum_int8(want.data(), q.data(), scales.data(), n, ranks, chunk);

      DeviceBuffer<int8_t> d_q(q.size());
      DeviceBuffer<float> d_scales(scales.size()), d_out(static_cast<size_t>(n));
      DSK_CUDA_CHECK(cudaMemcpy(d_q.get(), q.data(), q.size(), cudaMemcpyHostToDevice));
      upload(d_scales, scales);
      d_out.poison();
      cuda::dequantize_sum_int8(d_out.get(), d_q.get(), d_scales.get(), n, ranks, chunk, nullptr);
      CHECK(same_floats(download(d_out), want));
    }
  }
}
