// The decode step's fused RoPE + KV write (kernels/cuda/rope_kv_write.cu) against the ops it
// fuses on the GPU (rope_forward of q and k, paged_kv_write of k and v): the same bits in q, k
// and both pools, slots not written untouched; and against the CPU reference (relative L2 1e-5
// fp32, 1e-2 bf16, parity.cuh). Shapes: llama-1b decode (1 and 5 rows), grouped-query heads,
// both pairings, a yarn attention factor.
#include <cmath>
#include <memory>

#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "cuda/paged_attention.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

struct Shape {
  int N, H, KVH, D;
  bool interleaved;
  float attention_factor;
};

template <typename T>
void check_fused(const Shape& s, uint64_t seed) {
  CAPTURE(s.N);
  CAPTURE(s.H);
  CAPTURE(s.KVH);
  CAPTURE(s.D);
  CAPTURE(s.interleaved);
  const int row = s.KVH * s.D, slots = 50;
  cpu::Rope rope;
  for (int i = 0; i < s.D / 2; i++) rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / s.D));
  rope.attention_factor = s.attention_factor;
  rope.interleaved = s.interleaved;
  std::vector<int32_t> positions(s.N), targets(s.N);
  for (int n = 0; n < s.N; n++) {
    positions[n] = int32_t((seed * 131 + n * 977) % 4000);
    targets[n] = int32_t((n * 7 + 3) % slots);  // distinct for N <= 7
  }
  const auto q = rounded<T>(random_floats(size_t(s.N) * s.H * s.D, seed));
  const auto k = rounded<T>(random_floats(size_t(s.N) * row, seed + 1));
  const auto v = rounded<T>(random_floats(size_t(s.N) * row, seed + 2));
  const auto pool = rounded<T>(random_floats(size_t(slots) * row, seed + 3));

  DeviceBuffer<float> inv_freq(rope.inv_freq.size());
  DeviceBuffer<int32_t> d_positions(s.N), d_slots(s.N);
  upload(inv_freq, rope.inv_freq);
  DSK_CUDA_CHECK(cudaMemcpy(d_positions.get(), positions.data(), s.N * 4, cudaMemcpyHostToDevice));
  DSK_CUDA_CHECK(cudaMemcpy(d_slots.get(), targets.data(), s.N * 4, cudaMemcpyHostToDevice));
  const cuda::RopeDevice device{inv_freq.get(), rope.attention_factor, rope.interleaved};
  struct Run {
    DeviceBuffer<T> q, k, v, k_pool, v_pool;
  };
  auto fresh = [&] {
    std::unique_ptr<Run> r(new Run{DeviceBuffer<T>(q.size()), DeviceBuffer<T>(k.size()), DeviceBuffer<T>(v.size()),
                                   DeviceBuffer<T>(pool.size()), DeviceBuffer<T>(pool.size())});
    upload(r->q, q);
    upload(r->k, k);
    upload(r->v, v);
    upload(r->k_pool, pool);
    upload(r->v_pool, pool);
    return r;
  };
  const auto fused = fresh(), separate = fresh();
  cuda::rope_paged_kv_write<T>(fused->q.get(), fused->k.get(), fused->v.get(), fused->k_pool.get(),
                               fused->v_pool.get(), d_positions.get(), d_slots.get(), device, s.N, s.H, s.KVH, s.D,
                               nullptr);
  cuda::rope_forward<T>(separate->q.get(), d_positions.get(), device, s.N, s.H, s.D, 0, s.D, nullptr);
  cuda::rope_forward<T>(separate->k.get(), d_positions.get(), device, s.N, s.KVH, s.D, 0, s.D, nullptr);
  cuda::paged_kv_write<T>(separate->k_pool.get(), separate->k.get(), d_slots.get(), s.N, row, row, nullptr);
  cuda::paged_kv_write<T>(separate->v_pool.get(), separate->v.get(), d_slots.get(), s.N, row, row, nullptr);
  CHECK(download(fused->q) == download(separate->q));
  CHECK(download(fused->k) == download(separate->k));
  CHECK(download(fused->k_pool) == download(separate->k_pool));
  CHECK(download(fused->v_pool) == download(separate->v_pool));

  std::vector<float> q_ref = q, k_ref = k, k_pool_ref = pool, v_pool_ref = pool;
  cpu::rope_forward(q_ref.data(), positions.data(), rope, s.N, s.H, s.D, 0, s.D);
  cpu::rope_forward(k_ref.data(), positions.data(), rope, s.N, s.KVH, s.D, 0, s.D);
  cpu::paged_kv_write(k_pool_ref.data(), k_ref.data(), targets.data(), s.N, row, row);
  cpu::paged_kv_write(v_pool_ref.data(), v.data(), targets.data(), s.N, row, row);
  check_close("q", download(fused->q), q_ref, default_tolerance<T>());
  check_close("k pool", download(fused->k_pool), k_pool_ref, default_tolerance<T>());
  check_close("v pool", download(fused->v_pool), v_pool_ref, default_tolerance<T>());
}

}  // namespace

TEST_CASE_TEMPLATE("the fused RoPE + KV write equals the ops it fuses, and the CPU", T, float, bf16) {
  check_fused<T>({1, 16, 16, 128, false, 1.0f}, 1);  // llama-1b, batch 1
  check_fused<T>({5, 16, 16, 128, false, 1.0f}, 2);
  check_fused<T>({3, 8, 2, 64, true, 1.3f}, 3);     // grouped-query heads, interleaved, yarn factor
  check_fused<T>({7, 4, 4, 16, false, 1.0f}, 4);    // tiny fixture heads
}
