// The in-place cross-entropy of a chunk of LM-head rows (kernels/cuda/cross_entropy.cu) against
// kernels/cpu/cross_entropy.cpp: per-row losses, and dlogits = dscale (softmax - onehot) with
// dscale = 1 / count as the mean loss needs, with ignored rows, vocabularies that are tiny, odd
// (the scalar path), dense-124m's 32000 and DeepSeek-V3's 129280, rows with one dominant logit;
// dscale = 0 leaves the logits alone; sum_floats adds the losses; reruns are bit-identical.
// Tolerances (relative L2, parity.cuh): losses and their sum are fp32 for both element types: 1e-5;
// dlogits 1e-5 for fp32, 1e-2 for bf16 storage.
#include <cmath>

#include "cpu/kernels.hpp"
#include "cuda/cross_entropy.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

constexpr double kFp32Tolerance = 1e-5;
constexpr int kIgnore = -100;

struct Shape {
  int rows, V;
  float logit_scale;
};
const Shape kShapes[] = {
    {3, 8, 1.0f},     {5, 13, 2.0f},     {7, 97, 3.0f},  {2, 1, 1.0f},  // tiny and odd vocabularies
    {256, 32000, 3.0f},                                              // a dense-124m LM-head chunk
    {33, 129280, 2.0f},                                              // DeepSeek-V3's vocabulary
};

// Random targets with about one row in five ignored; row 0 always counted.
std::vector<int32_t> random_targets(const Shape& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> targets(s.rows);
  for (int r = 0; r < s.rows; r++) targets[r] = r > 0 && rng() % 5 == 0 ? kIgnore : (int32_t)(rng() % s.V);
  return targets;
}

// Logits with, in every third row, the target's logit raised far above the rest.
std::vector<float> random_logits(const Shape& s, const std::vector<int32_t>& targets, uint64_t seed) {
  std::vector<float> logits = random_floats((size_t)s.rows * s.V, seed, s.logit_scale);
  for (int r = 0; r < s.rows; r += 3)
    if (targets[r] != kIgnore) logits[(size_t)r * s.V + targets[r]] += 40.0f;
  return logits;
}

struct Outputs {
  std::vector<float> losses, logits, total;
};

template <typename T>
Outputs run_gpu(const std::vector<float>& logits, const std::vector<int32_t>& targets, const Shape& s, float dscale) {
  DeviceBuffer<T> z(logits.size());
  DeviceBuffer<int32_t> t(targets.size());
  DeviceBuffer<float> losses(s.rows), total(1);
  upload(z, logits);
  DSK_CUDA_CHECK(cudaMemcpy(t.get(), targets.data(), targets.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  losses.poison();
  total.poison();
  cuda::cross_entropy_chunk(losses.get(), z.get(), t.get(), s.rows, s.V, kIgnore, dscale, nullptr);
  cuda::sum_floats(total.get(), losses.get(), s.rows, nullptr);
  return {download(losses), download(z), download(total)};
}

}  // namespace

TEST_CASE_TEMPLATE("cross_entropy_chunk matches the CPU and repeats bit for bit", T, float, bf16) {
  uint64_t seed = 1000;
  for (const Shape& s : kShapes) {
    CAPTURE(s.rows);
    CAPTURE(s.V);
    const std::vector<int32_t> targets = random_targets(s, seed++);
    const std::vector<float> logits = rounded<T>(random_logits(s, targets, seed++));
    int count = 0;
    for (int32_t t : targets) count += t != kIgnore;
    for (const float dscale : {1.0f / count, 0.0f}) {
      CAPTURE(dscale);
      std::vector<float> losses(s.rows), dlogits = logits;
      cpu::cross_entropy_rows(losses.data(), dlogits.data(), targets.data(), s.rows, s.V, kIgnore, dscale);
      double total = 0;
      for (float loss : losses) total += loss;

      const Outputs gpu = run_gpu<T>(logits, targets, s, dscale);
      check_close("losses", gpu.losses, losses, kFp32Tolerance);
      check_close("sum of losses", gpu.total, {(float)total}, kFp32Tolerance);
      if (dscale == 0.0f)
        CHECK(gpu.logits == logits);  // forward only: the logits stay
      else
        check_close("dlogits", gpu.logits, dlogits, default_tolerance<T>());
      const Outputs again = run_gpu<T>(logits, targets, s, dscale);
      CHECK(again.losses == gpu.losses);
      CHECK(again.logits == gpu.logits);
      CHECK(again.total == gpu.total);
    }
  }
}

TEST_CASE("cross_entropy_chunk gives a NaN loss for a target outside the vocabulary") {
  const Shape s{3, 16, 1.0f};
  const std::vector<int32_t> targets = {2, 16, -1};
  const std::vector<float> logits = random_floats((size_t)s.rows * s.V, 5);
  const Outputs gpu = run_gpu<float>(logits, targets, s, 1.0f);
  CHECK(std::isfinite(gpu.losses[0]));
  CHECK(std::isnan(gpu.losses[1]));
  CHECK(std::isnan(gpu.losses[2]));
}
