// Appending new positions to a KV cache [B, max_length, row] during generation: one thread per
// W elements of a new row, rows [B * T_new, row] landing at positions length .. length + T_new.
#include "core/error.hpp"
#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T, int W>
__global__ void kv_cache_append_kernel(T* cache, const T* rows, int B, int T_new, int max_length, int length, int row) {
  const int packs_per_row = row / W;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)B * T_new * packs_per_row) return;
  const int64_t source_row = index / packs_per_row;  // b * T_new + t
  const int column = (int)(index % packs_per_row) * W;
  const int64_t b = source_row / T_new, t = source_row % T_new;
  store_vec(cache + (b * max_length + length + t) * row + column, load_vec<W>(rows + source_row * row + column));
}

}  // namespace

template <typename T>
void kv_cache_append(T* cache, const T* rows, int B, int T_new, int max_length, int length, int row,
                     cudaStream_t stream) {
  if (length < 0 || length + T_new > max_length)
    throw InternalError(str("kv_cache_append: positions ", length, "..", length + T_new, " do not fit a cache of ",
                            max_length));
  if ((int64_t)B * T_new * row == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(row, cache, rows), [&](auto width) {
    constexpr int W = decltype(width)::value;
    kv_cache_append_kernel<T, W><<<blocks_for((int64_t)B * T_new * (row / W), kThreads), kThreads, 0, stream>>>(
        cache, rows, B, T_new, max_length, length, row);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T) \
  template void kv_cache_append<T>(T*, const T*, int, int, int, int, int, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
