// kv_cache_append (kernels/cuda/kv_cache.cu) against kernels/cpu/kv_cache.cpp: new rows land at positions
// length .. length + T_new of each sequence and nothing else changes; a prefill, decode steps,
// an odd row width (the scalar path) and the serving shapes; an append past the end is refused.
// Tolerance: exact (a copy).
#include "core/error.hpp"
#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

struct Append {
  int B, T_new, max_length, length, row;
};

}  // namespace

TEST_CASE_TEMPLATE("kv_cache_append writes the new rows at the cache's length and nothing else", T, float, bf16) {
  const Append appends[] = {
      {2, 1, 8, 3, 8},          // decode step, tiny fixture row
      {3, 5, 16, 0, 13},        // prefill, odd row: the scalar path
      {1, 4, 4, 0, 16},         // fills the cache exactly
      {8, 1, 1024, 1023, 768},  // dense-124m: the last position of 8 sequences (12 heads of 64)
      {4, 100, 512, 37, 288},   // moe-16e: MLA's latent cache row (kv_rank 256 + rope 32)
  };
  uint64_t seed = 800;
  for (const Append& a : appends) {
    CAPTURE(a.B);
    CAPTURE(a.T_new);
    CAPTURE(a.length);
    CAPTURE(a.row);
    const size_t cache_size = (size_t)a.B * a.max_length * a.row, rows_size = (size_t)a.B * a.T_new * a.row;
    const std::vector<float> start = rounded<T>(random_floats(cache_size, seed++));
    const std::vector<float> rows = rounded<T>(random_floats(rows_size, seed++));
    std::vector<float> want = start;
    cpu::kv_cache_append(want.data(), rows.data(), a.B, a.T_new, a.max_length, a.length, a.row);
    DeviceBuffer<T> cache(cache_size), new_rows(rows_size);
    upload(cache, start);
    upload(new_rows, rows);
    cuda::kv_cache_append(cache.get(), new_rows.get(), a.B, a.T_new, a.max_length, a.length, a.row, nullptr);
    CHECK(download(cache) == want);
  }
}

TEST_CASE("kv_cache_append refuses positions past the cache's end") {
  DeviceBuffer<float> cache(2 * 4 * 8), rows(2 * 3 * 8);
  CHECK_THROWS_AS(cuda::kv_cache_append(cache.get(), rows.get(), 2, 3, 4, 2, 8, nullptr), dsk::InternalError);
  CHECK_NOTHROW(cuda::kv_cache_append(cache.get(), rows.get(), 2, 2, 4, 2, 8, nullptr));
}
