// Helpers of the GPU parity tests: random host data, device buffers, and the relative-error
// comparison every test states its tolerance in: ||gpu - cpu|| / ||cpu|| (L2 over the tensor),
// with NaN never passing. Typical bounds: fp32 kernels 1e-5, bf16 storage 1e-2.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cuda/common.cuh"

namespace dsk::gpu_test {

using kernels::cuda::bf16;

inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Rounds through T and back, so the CPU reference sees exactly the inputs the GPU kernel sees.
template <typename T>
std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = kernels::cuda::to_float(kernels::cuda::from_float<T>(v[i]));
  return out;
}

// A device buffer of n elements of E, freed with the object.
template <typename E>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) { DSK_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(E))); }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  E* get() const { return data_; }
  size_t size() const { return n_; }
  // Fills with the byte 0xFF (NaN for floats), so an element the kernel never wrote shows.
  void poison() { DSK_CUDA_CHECK(cudaMemset(data_, 0xFF, n_ * sizeof(E))); }

 private:
  E* data_ = nullptr;
  size_t n_;
};

// Host floats -> the device buffer, converted to T on the host.
template <typename T>
void upload(DeviceBuffer<T>& buffer, const std::vector<float>& host) {
  std::vector<T> converted(host.size());
  for (size_t i = 0; i < host.size(); i++) converted[i] = kernels::cuda::from_float<T>(host[i]);
  DSK_CUDA_CHECK(cudaMemcpy(buffer.get(), converted.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
}

template <typename T>
std::vector<float> download(const DeviceBuffer<T>& buffer) {
  DSK_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> raw(buffer.size());
  DSK_CUDA_CHECK(cudaMemcpy(raw.data(), buffer.get(), raw.size() * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> out(raw.size());
  for (size_t i = 0; i < raw.size(); i++) out[i] = kernels::cuda::to_float(raw[i]);
  return out;
}

inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

// CHECKs relative_error(got, want) <= tolerance, naming what was compared.
inline void check_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                        double tolerance) {
  const double error = relative_error(got, want);
  INFO(what << ": relative error " << error << " (tolerance " << tolerance << ")");
  CHECK(error <= tolerance);
}

template <typename T>
constexpr double default_tolerance() {
  return sizeof(T) == 4 ? 1e-5 : 1e-2;
}

}  // namespace dsk::gpu_test
