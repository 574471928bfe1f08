// The few-row products of gemv.cuh with their weights streamed through shared memory by the copy
// engine (cp.async.bulk, sm_90), for a decode step's chain of small products.
//
// Why: the register kernels of gemv_kernels.cuh keep 2-4 KB of loads in flight per warp, and every
// warp reads one row and exits, so a product of a few MB is mostly ramp-up and tail; they streamed
// llama-1b's chain at 1.7 TB/s where a copy reaches 4.2. Here a block owns a contiguous range of
// output columns, whose weight rows are one contiguous range of memory, and one thread asks the
// copy engine for it a stage of rows at a time into a ring of shared-memory stages, completing on
// an mbarrier per stage: tens of KB in flight per SM at no register cost. The grid is one wave of
// blocks (as many as fit on the GPU), and a block issues its first stages before it waits for the
// previous kernel (PDL): the weights do not depend on it, only the input rows do.
//
// Same results as gemv_kernels.cuh, bit for bit: a warp dots one row, each lane takes the chunks
// lane, lane + 32, ... in increasing order, and the warp sums its lanes in warp_sum's order.
#pragma once

#include <cuda/ptx>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "cuda/gemv_kernels.cuh"

namespace dsk::kernels::cuda::gemv {

namespace ptx = ::cuda::ptx;  // libcu++'s PTX wrappers (this namespace's `cuda` is dsk's)

template <int WARPS, int STAGES, int STAGE_BYTES, int BLOCKS_PER_SM = 1>
struct StreamSplit {
  static constexpr int kWarps = WARPS;             // warps per block; a warp dots a row at a time
  static constexpr int kStages = STAGES;           // shared-memory stages in the ring
  static constexpr int kStageBytes = STAGE_BYTES;  // weight bytes per stage (at least one row of each source)
  // Blocks per SM in the grid (fewer when fewer fit). One leaves room beside each block for the
  // next kernel's, which then fetches its first stages while this one still runs.
  static constexpr int kBlocksPerSm = BLOCKS_PER_SM;
};

// What one launch computes: the products of parts (gemv_forward: one part; gemv_parts_forward: up
// to kGemvMaxParts) or, with SOURCES = 2, SwiGLU of part 0 (gate, writing out) and part 1 (up).
// Part p owns the blocks [first_block[p], first_block[p + 1]) and splits its columns over them.
template <typename T>
struct StreamJob {
  GemvPart<T> part[kGemvMaxParts];
  int first_block[kGemvMaxParts + 1];
  int count;
  int rows_per_stage;       // columns a stage holds (their rows of every source)
  bool accumulate;          // out += instead of out =
  const T* norm_weight;     // not null: the input rows are RMSNorm(inp) with this weight, as rmsnorm_forward
  float norm_eps;
};

constexpr int kBarrierBytes = 128;  // the stages' mbarriers, then the norm's kGemvMaxRows factors
constexpr int kNormOffset = kBarrierBytes - kGemvMaxRows * int(sizeof(float));

template <typename T, int SOURCES>
__host__ __device__ inline int64_t stage_bytes(int rows_per_stage, int C) {
  return int64_t(SOURCES) * rows_per_stage * C * int64_t(sizeof(T));
}

// One stage of rows [first, first + rows) of every source into `stage`, completing on `full`.
template <typename T, int SOURCES>
__device__ __forceinline__ void issue_stage(T* stage, uint64_t* full, const GemvPart<T> (&sources)[SOURCES],
                                            int64_t first, int rows, int rows_per_stage, int C) {
  const uint32_t bytes = uint32_t(int64_t(rows) * C * int64_t(sizeof(T)));
  ptx::mbarrier_arrive_expect_tx(ptx::sem_release, ptx::scope_cta, ptx::space_shared, full,
                                       bytes * SOURCES);
#pragma unroll
  for (int s = 0; s < SOURCES; s++)
    ptx::cp_async_bulk(ptx::space_cluster, ptx::space_global,
                             stage + int64_t(s) * rows_per_stage * C, sources[s].weight + first * C, bytes, full);
}

__device__ __forceinline__ void wait_stage(uint64_t* full, uint32_t phase) {
  while (!ptx::mbarrier_try_wait_parity(full, phase)) {
  }
}

// The 16 bytes at p (16-byte aligned), as one load: a Chunk alone is only aligned to its elements.
template <typename T, int Vector>
__device__ __forceinline__ Chunk<T, Vector> load_aligned_chunk(const T* p) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  Chunk<T, Vector> chunk;
  memcpy(&chunk, &raw, sizeof(raw));
  return chunk;
}

// The 16 bytes at p (16-byte aligned) as floats. For bf16 a pair of values takes two instructions
// (a shift for the low half, a mask for the high one), where __bfloat162float's high half takes a
// permute and a shift; the values are the same.
template <typename T>
__device__ __forceinline__ void load_chunk_floats(const T* p, float (&values)[16 / sizeof(T)]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  if constexpr (std::is_same_v<T, bf16>) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      values[2 * i] = __uint_as_float(words[i] << 16);
      values[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  } else {
    static_assert(std::is_same_v<T, float>, "bf16 or fp32");
    values[0] = __uint_as_float(raw.x);
    values[1] = __uint_as_float(raw.y);
    values[2] = __uint_as_float(raw.z);
    values[3] = __uint_as_float(raw.w);
  }
}

// sums[s][n] = this lane's share of row `row` of source s (in shared memory) dotted with input row n.
// ROWS: the input rows when known at compile time (N is then ROWS), 0 when only N knows. Known, the
// loop has no branch a row, so the compiler issues the unrolled chunks' loads together.
template <typename T, int SOURCES, int ROWS = 0>
__device__ __forceinline__ void dot_stage_row(float (&sums)[SOURCES][kGemvMaxRows], const T* stage, const T* x,
                                              int row, int rows_per_stage, int N, int C, int lane) {
  static_assert(ROWS >= 0 && ROWS <= kGemvMaxRows, "ROWS is 0 (any) or at most kGemvMaxRows");
  constexpr int kRows = ROWS == 0 ? kGemvMaxRows : ROWS;
  constexpr int kVector = 16 / sizeof(T);
  const int chunks = C / kVector;
#pragma unroll 4
  for (int k = lane; k < chunks; k += 32) {
    float w[SOURCES][kVector];
#pragma unroll
    for (int s = 0; s < SOURCES; s++)
      load_chunk_floats<T>(stage + (int64_t(s) * rows_per_stage + row) * C + k * kVector, w[s]);
#pragma unroll
    for (int n = 0; n < kRows; n++) {
      if (ROWS != 0 || n < N) {
        float xc[kVector];
        load_chunk_floats<T>(x + int64_t(n) * C + k * kVector, xc);
#pragma unroll
        for (int s = 0; s < SOURCES; s++)
#pragma unroll
          for (int v = 0; v < kVector; v++) sums[s][n] += w[s][v] * xc[v];
      }
    }
  }
}

// RMSNorm of input rows in shared memory, with rmsnorm_forward's arithmetic in its order
// (rmsnorm.cu: a warp a row, each lane its 16-byte chunks in column order, then the butterfly), so
// that the products see the bits the unfused norm would have written. In two steps, so that every
// thread of a block can take part in the second: a warp sums a row's squares (row_inverse_rms),
// then the block scales the rows' chunks by it and the weight (scale_rows).

// 1 / sqrt(mean(row^2) + eps) of row [C], in every lane of the calling warp.
template <typename T>
__device__ __forceinline__ float row_inverse_rms(const T* row, int C, float eps, int lane) {
  constexpr int kVector = 16 / sizeof(T);
  float sum = 0;
  for (int k = lane; k < C / kVector; k += 32) {
    const Chunk<T, kVector> chunk = load_aligned_chunk<T, kVector>(row + k * kVector);
#pragma unroll
    for (int v = 0; v < kVector; v++) sum += to_float(chunk.values[v]) * to_float(chunk.values[v]);
  }
  sum = warp_sum(sum);
  return 1.0f / sqrtf(sum / C + eps);
}

// Rows [0, N) of x [N, C] in place to weight * x * inverse_rms[n], chunk `first`, first + step, ...
// (weight 16-byte aligned, read once per chunk with one load).
template <typename T>
__device__ __forceinline__ void scale_rows(T* x, const T* weight, const float* inverse_rms, int N, int C, int first,
                                           int step) {
  constexpr int kVector = 16 / sizeof(T);
  const int chunks = C / kVector;
  for (int i = first; i < N * chunks; i += step) {
    const int n = i / chunks, k = i % chunks;
    const float r = inverse_rms[n];
    T* at = x + int64_t(n) * C + int64_t(k) * kVector;
    Chunk<T, kVector> chunk = load_aligned_chunk<T, kVector>(at);
    const uint4 raw_weight = __ldg(reinterpret_cast<const uint4*>(weight) + k);
    Chunk<T, kVector> w;
    memcpy(&w, &raw_weight, sizeof(raw_weight));
#pragma unroll
    for (int v = 0; v < kVector; v++)
      chunk.values[v] = from_float<T>(to_float(w.values[v]) * (to_float(chunk.values[v]) * r));
    uint4 raw;
    memcpy(&raw, &chunk, sizeof(raw));
    *reinterpret_cast<uint4*>(at) = raw;
  }
}

// A column's output from its whole products (totals[s]: source s's dot): the product + the
// column's bias (bias_at, or null) + `residual` (when `adds`), rounded to T; or SwiGLU of the two
// products, each rounded as the unfused products are.
template <typename T, int SOURCES>
__device__ __forceinline__ T column_output(const float (&totals)[SOURCES], const T* bias_at, bool adds, float residual) {
  if constexpr (SOURCES == 2) {
    const float g = to_float(from_float<T>(totals[0]));
    const float u = to_float(from_float<T>(totals[1]));
    return from_float<T>(silu(g) * u);
  } else {
    float total = totals[0];
    if (bias_at) total += to_float(*bias_at);
    if (adds) total += residual;
    return from_float<T>(total);
  }
}

// Input row n's output at a column, in every lane: column_output of the warp's summed lanes.
template <typename T, int SOURCES>
__device__ __forceinline__ T column_value(float (&sums)[SOURCES][kGemvMaxRows], int n, const T* bias_at, bool adds,
                                          float residual) {
  float totals[SOURCES];
#pragma unroll
  for (int s = 0; s < SOURCES; s++) totals[s] = warp_sum(sums[s][n]);
  return column_output<T, SOURCES>(totals, bias_at, adds, residual);
}

// Lane 0 writes column col of every input row: the product (+ bias, += out), or SwiGLU of the two.
template <typename T, int SOURCES>
__device__ __forceinline__ void write_column(const GemvPart<T>& part, float (&sums)[SOURCES][kGemvMaxRows], int64_t col,
                                             int N, bool accumulate, int lane) {
#pragma unroll
  for (int n = 0; n < kGemvMaxRows; n++) {
    if (n >= N) continue;
    T* o = part.out + int64_t(n) * part.OC + col;
    const T* bias_at = SOURCES == 1 && part.bias ? part.bias + col : nullptr;
    const T value = column_value<T, SOURCES>(sums, n, bias_at, accumulate, accumulate ? to_float(*o) : 0.0f);
    if (lane == 0) *o = value;
  }
}

// ROWS: 1 when the launch has one input row (a batch-1 decode step, which dot_stage_row then
// computes without a branch a row), 0 for any N.
template <typename T, typename Split, int SOURCES, int ROWS>
__global__ void __launch_bounds__(Split::kWarps * 32)
    gemv_stream_kernel(const __grid_constant__ StreamJob<T> job, const T* inp, int N, int C) {
#if __CUDA_ARCH__ >= 900
  constexpr int kStages = Split::kStages;
  static_assert(kStages * int(sizeof(uint64_t)) <= kNormOffset, "the stages' mbarriers overlap the norm's factors");
  extern __shared__ __align__(128) char shared[];
  uint64_t* full = reinterpret_cast<uint64_t*>(shared);
  const int R = job.rows_per_stage;
  T* stages = reinterpret_cast<T*>(shared + kBarrierBytes);
  T* x = stages + kStages * stage_bytes<T, SOURCES>(R, C) / int64_t(sizeof(T));
  let_dependents_start();

  // This block's part (selected with constant indices: a dynamic index into kernel parameters
  // copies them to local memory) and its columns [begin, end).
  int p = 0;
#pragma unroll
  for (int i = 1; i < kGemvMaxParts; i++)
    if (i < job.count && SOURCES == 1 && int(blockIdx.x) >= job.first_block[i]) p = i;
  GemvPart<T> sources[SOURCES];
#pragma unroll
  for (int s = 0; s < SOURCES; s++) sources[s] = job.part[SOURCES == 1 ? 0 : s];
  int first_block = 0, blocks = job.first_block[1];
#pragma unroll
  for (int i = 1; i < kGemvMaxParts; i++)
    if (i == p) {
      sources[0] = job.part[i];
      first_block = job.first_block[i];
      blocks = job.first_block[i + 1] - job.first_block[i];
    }
  const int64_t OC = sources[0].OC, local = int64_t(blockIdx.x) - first_block;
  const int64_t begin = local * OC / blocks, end = (local + 1) * OC / blocks;
  const int stage_count = int((end - begin + R - 1) / R);
  auto stage_rows = [&](int i) { return int(min(int64_t(R), end - begin - int64_t(i) * R)); };
  auto stage_at = [&](int slot) { return stages + slot * stage_bytes<T, SOURCES>(R, C) / int64_t(sizeof(T)); };

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; s++) ptx::mbarrier_init(&full[s], 1);
    ptx::fence_mbarrier_init(ptx::sem_release, ptx::scope_cluster);
    for (int i = 0; i < kStages && i < stage_count; i++)
      issue_stage<T, SOURCES>(stage_at(i), &full[i], sources, begin + int64_t(i) * R, stage_rows(i), R, C);
  }
  wait_for_previous_grid();  // the input rows are the previous kernel's output
  const int64_t input_chunks = int64_t(N) * C * int64_t(sizeof(T)) / 16;
  for (int64_t i = threadIdx.x; i < input_chunks; i += blockDim.x)
    reinterpret_cast<uint4*>(x)[i] = reinterpret_cast<const uint4*>(inp)[i];
  __syncthreads();
  if (job.norm_weight) {
    float* inverse_rms = reinterpret_cast<float*>(shared + kNormOffset);
    for (int n = int(threadIdx.x) / 32; n < N; n += int(blockDim.x) / 32) {
      const float r = row_inverse_rms<T>(x + int64_t(n) * C, C, job.norm_eps, int(threadIdx.x) % 32);
      if (threadIdx.x % 32 == 0) inverse_rms[n] = r;
    }
    __syncthreads();
    scale_rows<T>(x, job.norm_weight, inverse_rms, N, C, int(threadIdx.x), int(blockDim.x));
    __syncthreads();
  }

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  for (int i = 0; i < stage_count; i++) {
    const int slot = i % kStages;
    wait_stage(&full[slot], uint32_t(i / kStages) & 1u);
    const int rows = stage_rows(i);
    for (int row = warp; row < rows; row += Split::kWarps) {
      float sums[SOURCES][kGemvMaxRows] = {};
      dot_stage_row<T, SOURCES, ROWS>(sums, stage_at(slot), x, row, R, N, C, lane);
      write_column<T, SOURCES>(sources[0], sums, begin + int64_t(i) * R + row, N, job.accumulate, lane);
    }
    __syncthreads();  // every warp is done with the slot before the copy engine refills it
    if (threadIdx.x == 0 && i + kStages < stage_count)
      issue_stage<T, SOURCES>(stage_at(slot), &full[slot], sources, begin + int64_t(i + kStages) * R,
                              stage_rows(i + kStages), R, C);
  }
#endif
}

// Blocks of `kernel` that fit on one SM with `shared_bytes` of dynamic shared memory, times the
// SMs: one wave. Cached per device, kernel and size (the occupancy query costs microseconds
// against a few-microsecond kernel); the first query of a kernel also lets it have all the shared memory a
// block may (the same limit every time, so that no later call lowers it under an earlier size).
inline int one_wave_blocks(const void* kernel, int threads, size_t shared_bytes) {
  static std::mutex mutex;
  static std::map<std::tuple<int, const void*, size_t>, int> cache;
  const DeviceTraits& traits = device_traits();
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(traits.device, kernel, shared_bytes);
  if (auto found = cache.find(key); found != cache.end()) return found->second;
  int per_sm = 0;
  DSK_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, traits.shared_per_block_optin));
  DSK_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, shared_bytes));
  return cache[key] = traits.multiprocessors * per_sm;
}

// The dynamic shared memory a job needs, or 0 when this device cannot stream it (before sm_90,
// rows not in whole 16-byte chunks, or more shared memory than a block may have).
template <typename T, typename Split, int SOURCES>
size_t stream_shared_bytes(int rows_per_stage, int N, int C, const T* inp, const StreamJob<T>& job) {
  const DeviceTraits& traits = device_traits();
  if (traits.major < 9 || !aligned16(inp) || (size_t(C) * sizeof(T)) % 16 != 0) return 0;
  for (int p = 0; p < job.count; p++)
    if (!aligned16(job.part[p].weight)) return 0;
  if (job.norm_weight && !aligned16(job.norm_weight)) return 0;
  const size_t bytes = kBarrierBytes + size_t(Split::kStages) * size_t(stage_bytes<T, SOURCES>(rows_per_stage, C)) +
                       size_t(N) * C * sizeof(T);
  return bytes <= size_t(traits.shared_per_block_optin) ? bytes : 0;
}

// Launches the job streamed; false (nothing launched) when this device cannot stream it.
// job.part[0..count) and accumulate are set by the caller; the rest is filled in here.
template <typename T, typename Split, int SOURCES>
bool launch_stream(StreamJob<T> job, const T* inp, int N, int C, cudaStream_t stream) {
  job.rows_per_stage = int(std::max<int64_t>(1, Split::kStageBytes / stage_bytes<T, SOURCES>(1, C)));
  const size_t shared_bytes = stream_shared_bytes<T, Split, SOURCES>(job.rows_per_stage, N, C, inp, job);
  if (shared_bytes == 0) return false;
  constexpr int kThreads = Split::kWarps * 32;
  const auto kernel = N == 1 ? gemv_stream_kernel<T, Split, SOURCES, 1> : gemv_stream_kernel<T, Split, SOURCES, 0>;
  const int wave = std::min(one_wave_blocks(reinterpret_cast<const void*>(kernel), kThreads, shared_bytes),
                            device_traits().multiprocessors * Split::kBlocksPerSm);
  if (wave == 0) return false;
  // Blocks shared among the parts by their columns, at least one each and no more than columns.
  const int parts = SOURCES == 1 ? job.count : 1;
  int64_t columns = 0;
  for (int p = 0; p < parts; p++) columns += job.part[p].OC;
  job.first_block[0] = 0;
  for (int p = 0; p < parts; p++) {
    const int64_t share = std::clamp<int64_t>(wave * int64_t(job.part[p].OC) / columns, 1, job.part[p].OC);
    job.first_block[p + 1] = job.first_block[p] + int(share);
  }
  for (int p = parts + 1; p <= kGemvMaxParts; p++) job.first_block[p] = job.first_block[parts];
  launch_dependent(kernel, unsigned(job.first_block[parts]), kThreads, shared_bytes, stream, job, inp, N, C);
  return true;
}

// gemv_forward, gemv_parts_forward and gemv_swiglu_forward streamed; false when not launched.
// norm_weight not null: the input rows are first RMSNorm'd with it (eps), as rmsnorm_forward would.
template <typename T, typename Split>
bool stream_gemv(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate,
                 cudaStream_t stream, const T* norm_weight = nullptr, float eps = 0) {
  StreamJob<T> job{};
  job.part[0] = {out, weight, bias, OC};
  job.count = 1;
  job.accumulate = accumulate;
  job.norm_weight = norm_weight;
  job.norm_eps = eps;
  return launch_stream<T, Split, 1>(job, inp, N, C, stream);
}

template <typename T, typename Split>
bool stream_gemv_parts(const GemvPart<T>* parts, int count, const T* inp, int N, int C, cudaStream_t stream,
                       const T* norm_weight = nullptr, float eps = 0) {
  StreamJob<T> job{};
  for (int p = 0; p < count; p++) job.part[p] = parts[p];
  job.count = count;
  job.norm_weight = norm_weight;
  job.norm_eps = eps;
  return launch_stream<T, Split, 1>(job, inp, N, C, stream);
}

template <typename T, typename Split>
bool stream_gemv_swiglu(T* out, const T* inp, const T* gate, const T* up, int N, int C, int I, cudaStream_t stream,
                        const T* norm_weight = nullptr, float eps = 0) {
  StreamJob<T> job{};
  job.part[0] = {out, gate, nullptr, I};
  job.part[1] = {out, up, nullptr, I};
  job.count = 2;
  job.norm_weight = norm_weight;
  job.norm_eps = eps;
  return launch_stream<T, Split, 2>(job, inp, N, C, stream);
}

}  // namespace dsk::kernels::cuda::gemv
