// Serving's paged KV cache: the slot scatter and the ragged-batch attention over block tables
// (paged_attention.cuh says how the work is split).
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "cuda/memory_bound.cuh"
#include "cuda/paged_attention.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int kMaxDk = 1024, kMaxDv = 512, kColumnsPerLane = kMaxDv / 32;
constexpr int kPartitionKeys = 256;  // keys per partition when a query's keys are split (at least)
constexpr int kMaxPartitions = 64;

template <typename T, int W>
__global__ void paged_kv_write_kernel(T* pool, const T* rows, const int32_t* slots, int N, int row, int stride) {
  const int packs = row / W;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)N * packs) return;
  const int64_t n = index / packs;
  const int column = int(index % packs) * W;
  store_vec(pool + (int64_t)slots[n] * stride + column, load_vec<W>(rows + n * row + column));
}

// One (query, head, partition): the partition's keys [begin, end) of the query's visible ones.
// With one partition the normalised output goes to out; otherwise the unnormalised sum, the max
// and the softmax denominator go to partial [N, H, partitions, Dv + 2] for the merge kernel.
template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(T* out, float* partial, const T* q, const T* k_pool, const T* v_pool,
                           const int32_t* block_tables, const int32_t* sequence, const int32_t* positions,
                           PagedAttentionShape s, int partitions, int partition_keys) {
  extern __shared__ float shared[];
  const int Dk = s.Dk, Dv = s.Dv;
  float* q_s = shared;              // [Dk], pre-scaled
  float* acc_s = q_s + Dk;          // [kWarps, Dv]
  float* max_s = acc_s + kWarps * Dv;  // [kWarps]
  float* sum_s = max_s + kWarps;       // [kWarps]
  const int n = blockIdx.x, h = blockIdx.y, part = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int keys = positions[n] + 1;
  const int begin = part * partition_keys, end = partitions == 1 ? keys : min(keys, begin + partition_keys);
  const T* qv = q + (int64_t)n * s.q_stride + (int64_t)h * Dk;
  for (int d = threadIdx.x; d < Dk; d += kThreads) q_s[d] = to_float(qv[d]) * s.scale;
  __syncthreads();

  const int kvh = h / (s.H / s.KVH);
  const int32_t* table = block_tables + (int64_t)sequence[n] * s.max_blocks;
  const int columns = (Dv + 31) / 32;
  float running_max = -INFINITY, running_sum = 0.0f;
  float acc[kColumnsPerLane];
#pragma unroll
  for (int c = 0; c < kColumnsPerLane; c++) acc[c] = 0.0f;

  for (int j0 = begin + warp * 32; j0 < end; j0 += kWarps * 32) {
    const int j = j0 + lane;
    float score = -INFINITY;
    int64_t slot = 0;
    if (j < end) {
      slot = (int64_t)table[j / s.block_size] * s.block_size + j % s.block_size;
      const T* key = k_pool + slot * s.k_stride + (int64_t)kvh * Dk;
      float dot = 0.0f;
      for (int d = 0; d < Dk; d += W) {
        const Vec<T, W> kv = load_vec<W>(key + d);
#pragma unroll
        for (int i = 0; i < W; i++) dot += q_s[d + i] * to_float(kv[i]);
      }
      score = dot;
    }
    // Lane 0's key is always visible, so the chunk's max is finite.
    const float new_max = fmaxf(running_max, warp_reduce(score, Max{}));
    const float p = j < end ? expf(score - new_max) : 0.0f;
    const float correction = expf(running_max - new_max);
    running_sum = running_sum * correction + warp_reduce(p, Sum{});
#pragma unroll
    for (int c = 0; c < kColumnsPerLane; c++) acc[c] *= correction;
    const int count = min(32, end - j0);
    for (int t = 0; t < count; t++) {
      const float weight = __shfl_sync(0xffffffffu, p, t);
      const int64_t key_slot = __shfl_sync(0xffffffffu, slot, t);
      const T* value = v_pool + key_slot * s.v_stride + (int64_t)kvh * Dv;
#pragma unroll
      for (int c = 0; c < kColumnsPerLane; c++) {
        const int d = lane + 32 * c;
        if (c < columns && d < Dv) acc[c] += weight * to_float(value[d]);
      }
    }
    running_max = new_max;
  }

#pragma unroll
  for (int c = 0; c < kColumnsPerLane; c++) {
    const int d = lane + 32 * c;
    if (c < columns && d < Dv) acc_s[warp * Dv + d] = acc[c];
  }
  if (lane == 0) {
    max_s[warp] = running_max;
    sum_s[warp] = running_sum;
  }
  __syncthreads();
  float block_max = -INFINITY;
  for (int w = 0; w < kWarps; w++) block_max = fmaxf(block_max, max_s[w]);
  float weights[kWarps], block_sum = 0.0f;
  for (int w = 0; w < kWarps; w++) {
    weights[w] = max_s[w] == -INFINITY ? 0.0f : expf(max_s[w] - block_max);
    block_sum += weights[w] * sum_s[w];
  }
  if (partitions == 1) {
    T* o = out + ((int64_t)n * s.H + h) * Dv;
    for (int d = threadIdx.x; d < Dv; d += kThreads) {
      float value = 0.0f;
      for (int w = 0; w < kWarps; w++) value += weights[w] * acc_s[w * Dv + d];
      o[d] = from_float<T>(block_sum > 0.0f ? value / block_sum : 0.0f);
    }
    return;
  }
  float* record = partial + (((int64_t)n * s.H + h) * partitions + part) * (Dv + 2);
  for (int d = threadIdx.x; d < Dv; d += kThreads) {
    float value = 0.0f;
    for (int w = 0; w < kWarps; w++) value += weights[w] * acc_s[w * Dv + d];
    record[d] = value;
  }
  if (threadIdx.x == 0) {
    record[Dv] = block_max;
    record[Dv + 1] = block_sum;
  }
}

// Merges the partitions of one (query, head) in partition order.
template <typename T>
__global__ void paged_attention_merge_kernel(T* out, const float* partial, int H, int Dv, int partitions) {
  const int64_t row = blockIdx.x;  // n * H + h
  const float* records = partial + row * partitions * (Dv + 2);
  float total_max = -INFINITY;
  for (int p = 0; p < partitions; p++) total_max = fmaxf(total_max, records[p * (Dv + 2) + Dv]);
  float total_sum = 0.0f;
  for (int p = 0; p < partitions; p++) {
    const float m = records[p * (Dv + 2) + Dv];
    if (m != -INFINITY) total_sum += expf(m - total_max) * records[p * (Dv + 2) + Dv + 1];
  }
  for (int d = threadIdx.x; d < Dv; d += blockDim.x) {
    float value = 0.0f;
    for (int p = 0; p < partitions; p++) {
      const float m = records[p * (Dv + 2) + Dv];
      if (m != -INFINITY) value += expf(m - total_max) * records[p * (Dv + 2) + d];
    }
    out[row * Dv + d] = from_float<T>(total_sum > 0.0f ? value / total_sum : 0.0f);
  }
}

int multiprocessors() {
  static const int count = [] {
    int device = 0, sms = 0;
    DSK_CUDA_CHECK(cudaGetDevice(&device));
    DSK_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  }();
  return count;
}

// Split the keys only when the (query, head) blocks alone would leave most SMs idle.
int partitions_for(const PagedAttentionShape& s) {
  if (s.max_keys <= kPartitionKeys || (int64_t)s.N * s.H >= 2 * multiprocessors()) return 1;
  return std::min(kMaxPartitions, (s.max_keys + kPartitionKeys - 1) / kPartitionKeys);
}

// Keys per partition: the partitions cover max_keys, in whole warps' chunks.
int partition_keys_for(const PagedAttentionShape& s, int partitions) {
  const int keys = (s.max_keys + partitions - 1) / partitions;
  return (keys + 31) / 32 * 32;
}

}  // namespace

template <typename T>
void paged_kv_write(T* pool, const T* rows, const int32_t* slots, int N, int row, int stride, cudaStream_t stream) {
  if ((int64_t)N * row == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(row, pool, rows) && stride % vec_width<T> == 0, [&](auto width) {
    constexpr int W = decltype(width)::value;
    paged_kv_write_kernel<T, W><<<blocks_for((int64_t)N * (row / W), 256), 256, 0, stream>>>(pool, rows, slots, N,
                                                                                               row, stride);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

size_t paged_attention_scratch_floats(const PagedAttentionShape& s) {
  const int partitions = partitions_for(s);
  return partitions == 1 ? 0 : size_t(s.N) * s.H * partitions * (s.Dv + 2);
}

template <typename T>
void paged_attention_forward(T* out, const T* q, const T* k_pool, const T* v_pool, const int32_t* block_tables,
                             const int32_t* sequence, const int32_t* positions, const PagedAttentionShape& s,
                             float* scratch, cudaStream_t stream) {
  if (s.Dk > kMaxDk || s.Dv > kMaxDv || s.Dk <= 0 || s.Dv <= 0 || s.KVH <= 0 || s.H % s.KVH != 0)
    throw InternalError(str("paged_attention_forward: unsupported shape H ", s.H, " KVH ", s.KVH, " Dk ", s.Dk, " Dv ",
                            s.Dv, " (Dk <= ", kMaxDk, ", Dv <= ", kMaxDv, ", H a multiple of KVH)"));
  if (s.N == 0) return;
  const int partitions = partitions_for(s);
  const size_t shared_bytes = sizeof(float) * (s.Dk + kWarps * s.Dv + 2 * kWarps);
  const int partition_keys = partition_keys_for(s, partitions);
  const dim3 grid(s.N, s.H, partitions);
  constexpr int V = vec_width<T>;
  const bool vectorized = s.Dk % V == 0 && s.k_stride % V == 0 && aligned_to(k_pool, 16);
  dispatch_width<T>(vectorized, [&](auto width) {
    constexpr int W = decltype(width)::value;
    paged_attention_kernel<T, W><<<grid, kThreads, shared_bytes, stream>>>(
        out, scratch, q, k_pool, v_pool, block_tables, sequence, positions, s, partitions, partition_keys);
  });
  DSK_CUDA_CHECK_LAUNCH();
  if (partitions == 1) return;
  paged_attention_merge_kernel<T><<<unsigned(s.N * s.H), 128, 0, stream>>>(out, scratch, s.H, s.Dv, partitions);
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                                        \
  template void paged_kv_write<T>(T*, const T*, const int32_t*, int, int, int, cudaStream_t);                    \
  template void paged_attention_forward<T>(T*, const T*, const T*, const T*, const int32_t*, const int32_t*,     \
                                           const int32_t*, const PagedAttentionShape&, float*, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
