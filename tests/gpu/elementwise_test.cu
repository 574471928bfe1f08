// The residual add, accumulate, the fp32 <-> T casts and copy_columns (kernels/cuda/elementwise.cu)
// against kernels/cpu/elementwise.cpp (the casts against parity.cuh's host rounding), on counts
// that are tiny, odd, not a multiple of a block and the bench residual stream, and on pointers
// one element off 16-byte alignment (the scalar path).
// Tolerance: exact. Each op rounds one fp32 result to T, so the CPU's fp32 result rounded alike
// (parity.cuh's rounded) is what the GPU must store.
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

// 16384 x 768: dense-124m's residual stream.
const int64_t kCounts[] = {1, 7, 8, 13, 1000, 256 * 8 * 3 + 8, 16384LL * 768};
// 0: the buffers as allocated (16-byte aligned); 1: every pointer one element further.
const int kMisalignments[] = {0, 1};

std::vector<float> cpu_sum(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> sum(a.size());
  cpu::add(sum.data(), a.data(), b.data(), (int64_t)a.size());
  return sum;
}

}  // namespace

TEST_CASE_TEMPLATE("add, accumulate and the casts equal host loops", T, float, bf16) {
  uint64_t seed = 500;
  for (const int64_t n : kCounts) {
    for (const int skew : kMisalignments) {
      CAPTURE(n);
      CAPTURE(skew);
      const std::vector<float> a = rounded<T>(random_floats(n, seed++)), b = rounded<T>(random_floats(n, seed++));
      const std::vector<float> sum = rounded<T>(cpu_sum(a, b));
      DeviceBuffer<T> da(n + skew), db(n + skew), dout(n + skew);
      DeviceBuffer<float> fp32(n + skew);
      const std::vector<float> pad(skew, 0.0f);
      auto with_pad = [&](const std::vector<float>& v) {
        std::vector<float> padded(pad);
        padded.insert(padded.end(), v.begin(), v.end());
        return padded;
      };
      auto without_pad = [&](const std::vector<float>& v) { return std::vector<float>(v.begin() + skew, v.end()); };
      upload(da, with_pad(a));
      upload(db, with_pad(b));

      dout.poison();
      cuda::add(dout.get() + skew, da.get() + skew, db.get() + skew, n, nullptr);
      CHECK(without_pad(download(dout)) == sum);

      cuda::add(da.get() + skew, da.get() + skew, db.get() + skew, n, nullptr);  // out aliases a
      CHECK(without_pad(download(da)) == sum);

      upload(da, with_pad(a));
      cuda::accumulate(da.get() + skew, db.get() + skew, n, nullptr);
      CHECK(without_pad(download(da)) == sum);

      const std::vector<float> wide = random_floats(n, seed++);
      upload(fp32, with_pad(wide));
      dout.poison();
      cuda::cast_from_float(dout.get() + skew, fp32.get() + skew, n, nullptr);
      CHECK(without_pad(download(dout)) == rounded<T>(wide));

      fp32.poison();
      cuda::cast_to_float(fp32.get() + skew, da.get() + skew, n, nullptr);
      CHECK(without_pad(download(fp32)) == sum);
    }
  }
}

TEST_CASE_TEMPLATE("copy_columns copies and accumulates a column window of every row", T, float, bf16) {
  struct Window {
    int N, out_stride, out_offset, in_stride, in_offset, width;
  };
  const Window windows[] = {
      {3, 8, 0, 16, 8, 8},             // tiny fixture rows
      {5, 9, 2, 13, 3, 7},             // odd everything: the scalar path
      {70, 40, 8, 24, 16, 8},          // vectorized for fp32 and bf16
      {8192, 256, 0, 288, 0, 256},     // moe-16e: kv_a's latent part (kv_rank 256 + rope 32)
      {8192, 32, 0, 288, 256, 32},     // moe-16e: kv_a's rope part
  };
  uint64_t seed = 600;
  for (const Window& w : windows) {
    for (const bool accumulate : {false, true}) {
      CAPTURE(w.N);
      CAPTURE(w.width);
      CAPTURE(accumulate);
      const std::vector<float> in = rounded<T>(random_floats((size_t)w.N * w.in_stride, seed++));
      const std::vector<float> start = rounded<T>(random_floats((size_t)w.N * w.out_stride, seed++));
      std::vector<float> want = start;
      cpu::copy_columns(want.data(), w.out_stride, w.out_offset, in.data(), w.in_stride, w.in_offset, w.N, w.width,
                        accumulate);
      want = rounded<T>(want);
      DeviceBuffer<T> din(in.size()), dout(start.size());
      upload(din, in);
      upload(dout, start);
      cuda::copy_columns(dout.get(), w.out_stride, w.out_offset, din.get(), w.in_stride, w.in_offset, w.N, w.width,
                         accumulate, nullptr);
      CHECK(download(dout) == want);  // columns outside the window keep their start values
    }
  }
}
