// sample_rows (kernels/cuda/sampling.cu) against kernels/cpu/sampling.cpp: exact ids, greedy
// (random rows of LM-head widths, ties to the lower index, a row of -inf) and sampled with hashed
// Gumbel noise (the same draws on both sides), plus a check that the sampled ids follow
// softmax(logits / T): over 4000 seeds of one 8-token row, each token's frequency within 0.03 of
// its probability.
#include <cmath>

#include "cpu/kernels.hpp"
#include "cuda/sampling.cuh"
#include "parity.cuh"
#include "../unit/serve/softmax_draws.hpp"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

std::vector<int32_t> run_gpu(const std::vector<float>& logits, const std::vector<float>& temperatures,
                             const std::vector<uint64_t>& seeds, int rows, int V) {
  DeviceBuffer<float> device_logits(logits.size()), device_temperatures(std::max<size_t>(temperatures.size(), 1));
  DeviceBuffer<uint64_t> device_seeds(std::max<size_t>(seeds.size(), 1));
  DeviceBuffer<int32_t> ids(static_cast<size_t>(rows));
  upload(device_logits, logits);
  if (!temperatures.empty()) {
    upload(device_temperatures, temperatures);
    DSK_CUDA_CHECK(cudaMemcpy(device_seeds.get(), seeds.data(), seeds.size() * 8, cudaMemcpyHostToDevice));
  }
  cuda::sample_rows(ids.get(), device_logits.get(), temperatures.empty() ? nullptr : device_temperatures.get(),
                    seeds.empty() ? nullptr : device_seeds.get(), rows, V, nullptr);
  std::vector<int32_t> got(static_cast<size_t>(rows));
  DSK_CUDA_CHECK(cudaMemcpy(got.data(), ids.get(), size_t(rows) * sizeof(int32_t), cudaMemcpyDeviceToHost));
  return got;
}

}  // namespace

TEST_CASE("greedy rows pick the CPU's ids: the first of the largest values") {
  for (int V : {7, 128, 32000, 129280}) {
    CAPTURE(V);
    const int rows = 33;
    std::vector<float> logits = random_floats(size_t(rows) * V, 300 + V);
    // Row 1: its max appears three times; row 2: every value equal; row 3: -inf everywhere.
    for (int i : {V / 3, V / 2, V - 1}) logits[size_t(V) + i] = 100.0f;
    for (int i = 0; i < V; i++) logits[2 * size_t(V) + i] = 0.5f;
    for (int i = 0; i < V; i++) logits[3 * size_t(V) + i] = -INFINITY;
    std::vector<int32_t> want(rows);
    cpu::sample_rows(want.data(), logits.data(), nullptr, nullptr, rows, V);
    const std::vector<int32_t> got = run_gpu(logits, {}, {}, rows, V);
    CHECK(got == want);
    CHECK(got[1] == V / 3);
    CHECK(got[2] == 0);
    CHECK(got[3] == 0);
  }
}

TEST_CASE("sampled rows draw the CPU's tokens, greedy and sampled rows mixed") {
  const int rows = 40, V = 32000;
  const std::vector<float> logits = random_floats(size_t(rows) * V, 77, 3.0f);
  std::vector<float> temperatures;
  std::vector<uint64_t> seeds;
  for (int r = 0; r < rows; r++) {
    temperatures.push_back(r % 4 == 0 ? 0.0f : 0.3f + 0.1f * float(r % 9));
    seeds.push_back(1000003ull * uint64_t(r) + 17);
  }
  std::vector<int32_t> want(rows);
  cpu::sample_rows(want.data(), logits.data(), temperatures.data(), seeds.data(), rows, V);
  CHECK(run_gpu(logits, temperatures, seeds, rows, V) == want);
}

TEST_CASE("the sampled tokens follow softmax(logits / T)") {
  const dsk::serve::testing::SoftmaxDraws d = dsk::serve::testing::softmax_draws(4000);
  const std::vector<int32_t> got = run_gpu(d.logits, d.temperatures, d.seeds, d.draws, d.V);
  CHECK(dsk::serve::testing::worst_frequency_error(d, got) <= 0.03);
}
