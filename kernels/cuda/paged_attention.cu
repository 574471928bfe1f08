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
constexpr int kMaxDk = 1024, kMaxDv = 512;
constexpr int kChunk = 32;                       // keys a warp scores at once: one per lane
constexpr int kPartitionKeys = kWarps * kChunk;  // keys a partition takes per round: a chunk per warp
constexpr int kMaxPartitions = 64;
constexpr int kBlocksPerSm = 4;  // the grid a split aims at: enough blocks to keep every SM busy
// 32-bit registers a lane spends on the loads of one batch: all of a batch's key (or value) rows
// are requested before the first is used, so a batch costs one memory round trip, not one per key.
constexpr int kLoadRegisters = 64;
constexpr int kMaxBatch = 16;

template <typename T, int W>
constexpr int registers_per_vec = int((W * sizeof(T) + 3) / 4);
// Keys per batch when a lane holds up to PL vectors of each key's row.
template <typename T, int W, int PL>
constexpr int key_batch = std::max(1, std::min(kMaxBatch, kLoadRegisters / (PL * registers_per_vec<T, W>)));

template <typename T, int W>
__global__ void paged_kv_write_kernel(T* pool, const T* rows, const int32_t* slots, int N, int row, int stride) {
  const int packs = row / W;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)N * packs) return;
  const int64_t n = index / packs;
  const int column = int(index % packs) * W;
  store_vec(pool + (int64_t)slots[n] * stride + column, load_vec<W>(rows + n * row + column));
}

__device__ __forceinline__ int next_power_of_two(int x) { return x <= 1 ? 1 : 1 << (32 - __clz(x - 1)); }

// How a warp's lanes cover rows of `vecs` W-wide vectors: lanes_per_row lanes (a power of two, at
// most 32) per row, lane `column` of them owning the row's vectors column + lanes_per_row * v
// (v < PL); the warp's 32 / lanes_per_row groups of lanes take different rows (keys).
struct RowSplit {
  int vecs, lanes_per_row, groups, group, column;
  __device__ RowSplit(int vecs_, int lane) : vecs(vecs_) {
    lanes_per_row = min(32, next_power_of_two(vecs));
    groups = 32 / lanes_per_row;
    group = lane / lanes_per_row;
    column = lane % lanes_per_row;
  }
  __device__ __forceinline__ int vec(int v) const { return column + lanes_per_row * v; }
};

// One (query, head, partition). The query's visible keys are cut into chunks of 32; partition
// `part` takes rounds of kWarps consecutive chunks, round r being chunks (r * partitions + part)
// * kWarps + [0, kWarps), one per warp. Round-robin rather than one contiguous range, so that a
// short context spreads over the partitions even when max_keys (what the host sized the grid by:
// a CUDA graph's replays use the plan's longest) is far longer than the keys the query sees.
// With one partition the normalised output goes to out; otherwise the unnormalised sum, the max
// and the softmax denominator go to partial [N, H, partitions, Dv + 2] for the merge.
//
// Per chunk: Q.K with the key rows split over lanes (RowSplit of Dk: each lane keeps its columns
// of q in registers, groups of lanes take the chunk's keys in turn, key_batch keys' rows loaded
// before the first multiply, each dot summed over its group by a butterfly), the scores through
// shared memory to lane j = key j, the warp's online softmax, then P.V with the value rows split
// the same way (RowSplit of Dv, acc in registers). The groups' P.V sums are added by a butterfly
// at the end, the 4 warps' in shared memory: fixed orders, so the same inputs give the same bits.
template <typename T, int W, int PL>
__device__ __forceinline__ void attend_partition(T* out, float* partial, const T* q, const T* k_pool,
                                                 const T* v_pool, const int32_t* block_tables,
                                                 const int32_t* sequence, const int32_t* positions,
                                                 const PagedAttentionShape& s, int partitions) {
  extern __shared__ float shared[];
  const int Dk = s.Dk, Dv = s.Dv;
  float* acc_s = shared;                   // [kWarps, Dv]
  float* max_s = acc_s + kWarps * Dv;      // [kWarps]
  float* sum_s = max_s + kWarps;           // [kWarps]
  float* score_s = sum_s + kWarps;         // [kWarps, kChunk]
  const int n = blockIdx.x, h = blockIdx.y, part = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int keys = positions[n] + 1;
  float* record = partitions == 1 ? nullptr : partial + (((int64_t)n * s.H + h) * partitions + part) * (Dv + 2);
  if (part * kPartitionKeys >= keys) {  // no visible key (never partition 0: key 0 is always visible)
    if (threadIdx.x == 0) {
      record[Dv] = -INFINITY;
      record[Dv + 1] = 0.0f;
    }
    return;
  }

  const int kvh = h / (s.H / s.KVH);
  const int32_t* table = block_tables + (int64_t)sequence[n] * s.max_blocks;
  auto slot_of = [&](int j) { return (int64_t)table[j / s.block_size] * s.block_size + j % s.block_size; };
  const int round_keys = partitions * kPartitionKeys;
  int j0 = (part * kWarps + warp) * kChunk;
  int64_t slot = j0 + lane < keys ? slot_of(j0 + lane) : 0;  // the first chunk's, while q arrives

  const RowSplit ks(Dk / W, lane), vs(Dv / W, lane);  // W divides Dk and Dv on the vector path
  const T* qv = q + (int64_t)n * s.q_stride + (int64_t)h * Dk;
  float q_r[PL][W];  // this lane's columns of q, pre-scaled
#pragma unroll
  for (int v = 0; v < PL; v++) {
    Packed<T, W> x;
    if (ks.vec(v) < ks.vecs) x.load(qv + ks.vec(v) * W);
#pragma unroll
    for (int i = 0; i < W; i++) q_r[v][i] = ks.vec(v) < ks.vecs ? x[i] * s.scale : 0.0f;
  }
  const T* k_head = k_pool + (int64_t)kvh * Dk;
  const T* v_head = v_pool + (int64_t)kvh * Dv;
  constexpr int kBatch = key_batch<T, W, PL>;
  float running_max = -INFINITY, running_sum = 0.0f;
  float acc[PL][W];
#pragma unroll
  for (int v = 0; v < PL; v++)
#pragma unroll
    for (int i = 0; i < W; i++) acc[v][i] = 0.0f;

  for (; j0 < keys; j0 += round_keys) {
    const int count = min(kChunk, keys - j0);
    const int next = j0 + round_keys + lane;
    const int64_t next_slot = next < keys ? slot_of(next) : 0;  // the next round's table entry, early

#pragma unroll 1
    for (int t0 = 0; t0 < count; t0 += ks.groups * kBatch) {
      Packed<T, W> rows[kBatch][PL] = {};
#pragma unroll
      for (int b = 0; b < kBatch; b++) {
        const int t = t0 + b * ks.groups + ks.group;
        const T* row = k_head + __shfl_sync(0xffffffffu, slot, t % 32) * s.k_stride;
#pragma unroll
        for (int v = 0; v < PL; v++)
          if (t < count && ks.vec(v) < ks.vecs) rows[b][v].load(row + ks.vec(v) * W);
      }
#pragma unroll
      for (int b = 0; b < kBatch; b++) {
        const int t = t0 + b * ks.groups + ks.group;
        float dot = 0.0f;
#pragma unroll
        for (int v = 0; v < PL; v++)
          if (t < count && ks.vec(v) < ks.vecs) {
#pragma unroll
            for (int i = 0; i < W; i++) dot += q_r[v][i] * rows[b][v][i];
          }
        for (int offset = ks.lanes_per_row / 2; offset > 0; offset /= 2)
          dot += __shfl_xor_sync(0xffffffffu, dot, offset);
        if (ks.column == 0 && t < count) score_s[warp * kChunk + t] = dot;
      }
    }
    __syncwarp();
    const bool visible = lane < count;
    const float score = visible ? score_s[warp * kChunk + lane] : -INFINITY;
    __syncwarp();  // every lane has its score before the next chunk's are written

    // Lane 0's key is visible (j0 < keys), so the chunk's max is finite.
    const float new_max = fmaxf(running_max, warp_reduce(score, Max{}));
    const float p = visible ? expf(score - new_max) : 0.0f;
    const float correction = expf(running_max - new_max);
    running_sum = running_sum * correction + warp_reduce(p, Sum{});
    running_max = new_max;
#pragma unroll
    for (int v = 0; v < PL; v++)
#pragma unroll
      for (int i = 0; i < W; i++) acc[v][i] *= correction;

#pragma unroll 1
    for (int t0 = 0; t0 < count; t0 += vs.groups * kBatch) {
      Packed<T, W> rows[kBatch][PL] = {};
      float weights[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; b++) {
        const int t = t0 + b * vs.groups + vs.group;
        weights[b] = __shfl_sync(0xffffffffu, p, t % 32);
        const T* row = v_head + __shfl_sync(0xffffffffu, slot, t % 32) * s.v_stride;
#pragma unroll
        for (int v = 0; v < PL; v++)
          if (t < count && vs.vec(v) < vs.vecs) rows[b][v].load(row + vs.vec(v) * W);
      }
#pragma unroll
      for (int b = 0; b < kBatch; b++) {
        if (t0 + b * vs.groups + vs.group >= count) continue;
#pragma unroll
        for (int v = 0; v < PL; v++)
          if (vs.vec(v) < vs.vecs) {
#pragma unroll
            for (int i = 0; i < W; i++) acc[v][i] += weights[b] * rows[b][v][i];
          }
      }
    }
    slot = next_slot;
  }

  // The groups' sums into group 0 (lanes [0, lanes_per_row)), then to shared memory.
  for (int offset = vs.lanes_per_row; offset < 32; offset *= 2)
#pragma unroll
    for (int v = 0; v < PL; v++)
#pragma unroll
      for (int i = 0; i < W; i++) acc[v][i] += __shfl_xor_sync(0xffffffffu, acc[v][i], offset);
  if (vs.group == 0) {
#pragma unroll
    for (int v = 0; v < PL; v++)
      if (vs.vec(v) < vs.vecs) {
#pragma unroll
        for (int i = 0; i < W; i++) acc_s[warp * Dv + vs.vec(v) * W + i] = acc[v][i];
      }
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

// Merges the partitions of one (query, head): warp 0 finds the largest max and each partition's
// weight exp(max_p - max) (0 for an empty one, whose columns were never written), then every thread
// adds its columns over the partitions in partition order, 8 records' loads in flight at a time.
// The records come from other blocks of the launch, so they are read from L2 (__ldcg).
template <typename T>
__device__ void merge_partitions(T* out, const float* records, int Dv, int partitions) {
  __shared__ float weight_s[kMaxPartitions];
  __shared__ float total_s;
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    float most = -INFINITY;
    for (int p = lane; p < partitions; p += 32) most = fmaxf(most, __ldcg(records + p * (Dv + 2) + Dv));
    most = warp_reduce(most, Max{});
    float total = 0.0f;
    for (int p = lane; p < partitions; p += 32) {
      const float m = __ldcg(records + p * (Dv + 2) + Dv);
      const float weight = m == -INFINITY ? 0.0f : expf(m - most);
      weight_s[p] = weight;
      if (weight > 0.0f) total += weight * __ldcg(records + p * (Dv + 2) + Dv + 1);
    }
    total = warp_reduce(total, Sum{});
    if (lane == 0) total_s = total;
  }
  __syncthreads();
  const float total = total_s;
  for (int d = threadIdx.x; d < Dv; d += blockDim.x) {
    float value = 0.0f;
#pragma unroll 8
    for (int p = 0; p < partitions; p++) {
      const float weight = weight_s[p];
      if (weight > 0.0f) value += weight * __ldcg(records + p * (Dv + 2) + d);
    }
    out[d] = from_float<T>(total > 0.0f ? value / total : 0.0f);
  }
}

// Whether this block is the last of its (query, head)'s partitions to finish: the classic
// fence-then-count arrival, so that the last one merges and no second kernel is needed (a decode
// step's 16-32 merge launches cost more in launch and drain than their work). The last block sets
// the counter back to zero for the next launch, so the counters stay zero between launches.
__device__ bool last_to_arrive(unsigned* turn, int partitions) {
  __shared__ bool last;
  __threadfence();  // this block's record is visible before its arrival is counted
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(turn, 1u) == unsigned(partitions - 1);
    if (last) *turn = 0u;  // every other block of this (query, head) has already counted
  }
  __syncthreads();
  if (last) __threadfence();  // the others' records are read after their arrivals
  return last;
}

template <typename T, int W, int PL>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(T* out, float* partial, unsigned* turns, const T* q, const T* k_pool, const T* v_pool,
                           const int32_t* block_tables, const int32_t* sequence, const int32_t* positions,
                           PagedAttentionShape s, int partitions) {
  let_dependents_start();  // the product that follows fetches its weights meanwhile
  attend_partition<T, W, PL>(out, partial, q, k_pool, v_pool, block_tables, sequence, positions, s, partitions);
  if (partitions == 1) return;
  const int64_t row = (int64_t)blockIdx.x * s.H + blockIdx.y;  // n * H + h
  if (last_to_arrive(turns + row, partitions))
    merge_partitions(out + row * s.Dv, partial + row * partitions * (s.Dv + 2), s.Dv, partitions);
}

int multiprocessors() { return device_traits().multiprocessors; }

// Split the keys only when the (query, head) blocks alone would leave SMs idle (fewer than 2 per
// SM: decode of a small batch), into as many partitions as bring the grid to kBlocksPerSm blocks
// per SM, as the longest context can use (a partition's round is kPartitionKeys keys) and as the
// merge takes.
int partitions_for(const PagedAttentionShape& s) {
  const int64_t queries = (int64_t)s.N * s.H, target = (int64_t)kBlocksPerSm * multiprocessors();
  if (queries == 0 || queries >= paged_attention_turns()) return 1;
  const int64_t rounds = (s.max_keys + kPartitionKeys - 1) / kPartitionKeys;
  return (int)std::max<int64_t>(1, std::min<int64_t>({kMaxPartitions, rounds, (target + queries - 1) / queries}));
}

}  // namespace

int paged_attention_turns() { return 2 * multiprocessors(); }

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
                             float* scratch, unsigned* turns, cudaStream_t stream) {
  if (s.Dk > kMaxDk || s.Dv > kMaxDv || s.Dk <= 0 || s.Dv <= 0 || s.KVH <= 0 || s.H % s.KVH != 0)
    throw InternalError(str("paged_attention_forward: unsupported shape H ", s.H, " KVH ", s.KVH, " Dk ", s.Dk, " Dv ",
                            s.Dv, " (Dk <= ", kMaxDk, ", Dv <= ", kMaxDv, ", H a multiple of KVH)"));
  if (s.N == 0) return;
  const int partitions = partitions_for(s);
  const size_t shared_bytes = sizeof(float) * (kWarps * s.Dv + 2 * kWarps + kWarps * kChunk);
  const dim3 grid(s.N, s.H, partitions);
  constexpr int V = vec_width<T>;
  const bool vectorized = s.Dk % V == 0 && s.Dv % V == 0 && s.q_stride % V == 0 && s.k_stride % V == 0 &&
                          s.v_stride % V == 0 && aligned_to(q, 16) && aligned_to(k_pool, 16) && aligned_to(v_pool, 16);
  dispatch_width<T>(vectorized, [&](auto width) {
    constexpr int W = decltype(width)::value;
    auto launch = [&](auto per_lane) {
      constexpr int PL = decltype(per_lane)::value;
      paged_attention_kernel<T, W, PL><<<grid, kThreads, shared_bytes, stream>>>(
          out, scratch, turns, q, k_pool, v_pool, block_tables, sequence, positions, s, partitions);
    };
    // Vectors a lane holds of a key or value row: the scalar path (odd head sizes) up to
    // kMaxDk / 32 columns; the vector path 1, 2, 4 (bf16: up to Dk 1024) or 8 (fp32).
    constexpr int kMost = kMaxDk / W / 32;
    const int needed = (std::max(s.Dk, s.Dv) / W + 31) / 32;
    if constexpr (W == 1)
      launch(std::integral_constant<int, kMost>{});
    else if (needed <= 1)
      launch(std::integral_constant<int, 1>{});
    else if (needed <= 2)
      launch(std::integral_constant<int, 2>{});
    else if (needed <= 4 || kMost == 4)
      launch(std::integral_constant<int, 4>{});
    else
      launch(std::integral_constant<int, kMost>{});
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                                        \
  template void paged_kv_write<T>(T*, const T*, const int32_t*, int, int, int, cudaStream_t);                    \
  template void paged_attention_forward<T>(T*, const T*, const T*, const T*, const int32_t*, const int32_t*,     \
                                           const int32_t*, const PagedAttentionShape&, float*, unsigned*,   \
                                           cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
