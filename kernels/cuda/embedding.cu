// Token embedding on the GPU; kernels/cpu/embedding.cpp is the spec. The forward copies rows W
// elements at a time. The backward must add the rows of repeated tokens into one dtable row
// without float atomics: it sorts the positions by token id (CUB's radix sort, a stable LSD
// sort over the id's bits, so each token's positions stay in position order), then one block per
// run of equal ids sums that token's dout rows in a fixed order and adds the sum to dtable.
#include <cub/device/device_radix_sort.cuh>

#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRowGroups = 8;  // a run's rows are split over this many threads per column

template <typename T, int W>
__global__ void embedding_forward_kernel(T* out, const int32_t* tokens, const T* table, int N, int C) {
  const int packs_per_row = C / W;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)N * packs_per_row) return;
  const int n = (int)(index / packs_per_row), column = (int)(index % packs_per_row) * W;
  store_vec(out + (int64_t)n * C + column, load_vec<W>(table + (int64_t)tokens[n] * C + column));
}

__global__ void iota_kernel(int32_t* values, int N) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) values[i] = i;
}

// One block (32, kRowGroups) per sorted index s; only the first index of each run of equal ids
// works. Thread (x, y) sums, for its column pack, the run's rows s + y, s + y + kRowGroups, ... in
// order; then y = 0 adds the kRowGroups sums in order to dtable[token]. Ids outside [0, V) are
// skipped (the forward would have read out of bounds on them: the caller checks ids).
template <typename T, int W>
__global__ void embedding_backward_kernel(float* dtable, const T* dout, const uint32_t* sorted_tokens,
                                          const int32_t* sorted_positions, int N, int C, int V) {
  const int s = blockIdx.x;
  const uint32_t token = sorted_tokens[s];
  if ((s > 0 && sorted_tokens[s - 1] == token) || token >= (uint32_t)V) return;  // the whole block leaves
  __shared__ float group_sums[kRowGroups][W * 32];  // [group][i * 32 + x]: lanes on consecutive banks
  const int packs = C / W;
  for (int base = 0; base < packs; base += 32) {  // the same trip count in every thread: barriers are safe
    const int pack = base + threadIdx.x;
    float sum[W] = {};
    if (pack < packs)
      for (int k = s + threadIdx.y; k < N && sorted_tokens[k] == token; k += kRowGroups) {
        const Vec<T, W> d = load_vec<W>(dout + (int64_t)sorted_positions[k] * C + pack * W);
#pragma unroll
        for (int i = 0; i < W; i++) sum[i] += to_float(d[i]);
      }
#pragma unroll
    for (int i = 0; i < W; i++) group_sums[threadIdx.y][i * 32 + threadIdx.x] = sum[i];
    __syncthreads();
    if (threadIdx.y == 0 && pack < packs) {
      float* row = dtable + (int64_t)token * C + pack * W;
#pragma unroll
      for (int i = 0; i < W; i++) {
        float total = 0;
        for (int g = 0; g < kRowGroups; g++) total += group_sums[g][i * 32 + threadIdx.x];
        row[i] += total;
      }
    }
    __syncthreads();  // group_sums is rewritten by the next pack
  }
}

size_t aligned_size(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The scratch: sorted ids [N], positions 0..N-1 [N], sorted positions [N], the sort's own storage.
struct SortScratch {
  uint32_t* sorted_tokens;
  int32_t* positions;
  int32_t* sorted_positions;
  void* sort_storage;
  size_t sort_bytes;
};

// All 32 bits are sorted (not only those of V - 1), so that a bad id cannot split another id's
// run; on 16K positions the two extra passes cost microseconds.
size_t sort_storage_bytes(int N) {
  size_t bytes = 0;
  DSK_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const uint32_t*)nullptr, (uint32_t*)nullptr,
                                                 (const int32_t*)nullptr, (int32_t*)nullptr, N));
  return bytes;
}

SortScratch carve(void* scratch, int N) {
  char* at = static_cast<char*>(scratch);
  const size_t ids = aligned_size(sizeof(int32_t) * N);
  return {reinterpret_cast<uint32_t*>(at), reinterpret_cast<int32_t*>(at + ids),
          reinterpret_cast<int32_t*>(at + 2 * ids), at + 3 * ids, sort_storage_bytes(N)};
}

}  // namespace

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(C, out, table), [&](auto width) {
    constexpr int W = decltype(width)::value;
    embedding_forward_kernel<T, W>
        <<<blocks_for((int64_t)N * (C / W), kThreads), kThreads, 0, stream>>>(out, tokens, table, N, C);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

size_t embedding_backward_scratch_bytes(int N, int /*V*/) {
  return 3 * aligned_size(sizeof(int32_t) * N) + sort_storage_bytes(N);
}

template <typename T>
void embedding_backward(float* dtable, const T* dout, const int32_t* tokens, int N, int C, int V, void* scratch,
                        cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  SortScratch s = carve(scratch, N);
  iota_kernel<<<blocks_for(N, kThreads), kThreads, 0, stream>>>(s.positions, N);
  DSK_CUDA_CHECK_LAUNCH();
  // Sorted as unsigned: a negative id lands after every valid one and is skipped like ids >= V.
  DSK_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(s.sort_storage, s.sort_bytes,
                                                 reinterpret_cast<const uint32_t*>(tokens), s.sorted_tokens,
                                                 s.positions, s.sorted_positions, N, 0, 32, stream));
  dispatch_width<T>(vectorizable<vec_width<T>>(C, dout), [&](auto width) {
    constexpr int W = decltype(width)::value;
    embedding_backward_kernel<T, W><<<N, dim3(32, kRowGroups), 0, stream>>>(dtable, dout, s.sorted_tokens,
                                                                            s.sorted_positions, N, C, V);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                  \
  template void embedding_forward<T>(T*, const int32_t*, const T*, int, int, cudaStream_t); \
  template void embedding_backward<T>(float*, const T*, const int32_t*, int, int, int, void*, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
