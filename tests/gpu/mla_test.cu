// MLA's key/value expansion (kernels/cuda/mla.cu) against kernels/cpu/mla.cpp (k = [kv_b's nope
// part, the shared rope key], v = kv_b's value part; the backward routes the gradients back and
// sums the rope key's over the heads), on tiny and odd head sizes (the scalar path), the bench
// moe-16e shape and a DeepSeek-V3-sized head; gradients accumulate onto random non-zero starts;
// reruns are bit-identical.
// Tolerances: the forward is a copy, exact; the backward (relative L2, parity.cuh) 1e-5 for fp32
// and 1e-2 for bf16 storage.
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

struct Shape {
  int N, H, nope, R, Dv, kv_rank;
  size_t kv_b() const { return (size_t)N * H * (nope + Dv); }
  size_t kv_a() const { return (size_t)N * (kv_rank + R); }
  size_t k() const { return (size_t)N * H * (nope + R); }
  size_t v() const { return (size_t)N * H * Dv; }
};
const Shape kShapes[] = {
    {3, 2, 8, 8, 8, 16},         // tiny fixture
    {5, 3, 5, 3, 7, 6},          // odd sizes: the scalar path
    {8192, 16, 64, 32, 64, 256}, // bench moe-16e
    {64, 128, 128, 64, 128, 512} // DeepSeek-V3's head sizes
};

struct Outputs {
  std::vector<float> k, v, dkv_b, dkv_a;
};

template <typename T>
Outputs run_gpu(const std::vector<float>& kv_b, const std::vector<float>& kv_a, const std::vector<float>& dk,
                const std::vector<float>& dv, const std::vector<float>& dkv_b_start,
                const std::vector<float>& dkv_a_start, const Shape& s) {
  DeviceBuffer<T> b(s.kv_b()), a(s.kv_a()), k(s.k()), v(s.v()), dkd(s.k()), dvd(s.v()), db(s.kv_b()), da(s.kv_a());
  upload(b, kv_b);
  upload(a, kv_a);
  upload(dkd, dk);
  upload(dvd, dv);
  upload(db, dkv_b_start);
  upload(da, dkv_a_start);
  k.poison();
  v.poison();
  cuda::mla_expand_forward(k.get(), v.get(), b.get(), a.get(), s.N, s.H, s.nope, s.R, s.Dv, s.kv_rank, nullptr);
  cuda::mla_expand_backward(db.get(), da.get(), dkd.get(), dvd.get(), s.N, s.H, s.nope, s.R, s.Dv, s.kv_rank,
                            nullptr);
  return {download(k), download(v), download(db), download(da)};
}

}  // namespace

TEST_CASE_TEMPLATE("mla expand forward and backward match the CPU and repeat bit for bit", T, float, bf16) {
  uint64_t seed = 700;
  for (const Shape& s : kShapes) {
    CAPTURE(s.N);
    CAPTURE(s.H);
    CAPTURE(s.nope);
    CAPTURE(s.R);
    CAPTURE(s.Dv);
    CAPTURE(s.kv_rank);
    const std::vector<float> kv_b = rounded<T>(random_floats(s.kv_b(), seed++));
    const std::vector<float> kv_a = rounded<T>(random_floats(s.kv_a(), seed++));
    const std::vector<float> dk = rounded<T>(random_floats(s.k(), seed++));
    const std::vector<float> dv = rounded<T>(random_floats(s.v(), seed++));
    const std::vector<float> dkv_b_start = rounded<T>(random_floats(s.kv_b(), seed++));
    const std::vector<float> dkv_a_start = rounded<T>(random_floats(s.kv_a(), seed++));
    std::vector<float> k(s.k()), v(s.v()), dkv_b = dkv_b_start, dkv_a = dkv_a_start;
    cpu::mla_expand_forward(k.data(), v.data(), kv_b.data(), kv_a.data(), s.N, s.H, s.nope, s.R, s.Dv, s.kv_rank);
    cpu::mla_expand_backward(dkv_b.data(), dkv_a.data(), dk.data(), dv.data(), s.N, s.H, s.nope, s.R, s.Dv,
                             s.kv_rank);

    const Outputs gpu = run_gpu<T>(kv_b, kv_a, dk, dv, dkv_b_start, dkv_a_start, s);
    CHECK(gpu.k == k);
    CHECK(gpu.v == v);
    check_close("dkv_b", gpu.dkv_b, dkv_b, default_tolerance<T>());
    check_close("dkv_a", gpu.dkv_a, dkv_a, default_tolerance<T>());
    const Outputs again = run_gpu<T>(kv_b, kv_a, dk, dv, dkv_b_start, dkv_a_start, s);
    CHECK(again.dkv_b == gpu.dkv_b);
    CHECK(again.dkv_a == gpu.dkv_a);
  }
}
