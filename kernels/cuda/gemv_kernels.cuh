// The few-row kernels of gemv.cu, templated on how the work is split (GemvSplit), so that
// scripts/bench/gemv_bench.cu can time other splits against the one gemv.cu compiles.
//
// A warp owns kColumns consecutive output columns: it streams their weight rows (ROWS rows: the
// columns, or for SwiGLU the gate and up row of each) kUnroll 16-byte loads per lane and row at a
// time, all of them in flight together, and dots them with every input row. Each lane takes the
// chunks lane, lane + 32, ... in increasing order whatever the split, and the warp sums the lanes
// in one fixed shuffle order, so every split gives the same bits.
//
// The weights do not depend on the previous op, only the input rows do. So the kernels are
// launched as programmatic dependents (PDL, sm_90): their blocks may start while the previous
// kernel still runs, ask L2 for their weight rows at once, and only then wait for the previous
// grid (griddepcontrol.wait) before reading the input. A decode step is a chain of small kernels;
// this overlaps each one's weight fetch with the tail of the one before.
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda/gemv.cuh"

namespace dsk::kernels::cuda::gemv {

template <int COLUMNS, int UNROLL, int WARPS>
struct GemvSplit {
  static constexpr int kColumns = COLUMNS;  // output columns per warp
  static constexpr int kUnroll = UNROLL;    // 16-byte loads in flight per lane and weight row
  static constexpr int kWarps = WARPS;      // warps per block
  static constexpr int kBlockColumns = COLUMNS * WARPS;
};

// The sum of `value` over the warp, in every lane.
__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// Elements of T in one 16-byte load (Vector = 1: element loads, for misaligned views).
template <typename T, int Vector>
struct Chunk {
  T values[Vector];
};

template <typename T, int Vector>
__device__ __forceinline__ Chunk<T, Vector> load_chunk(const T* p) {
  if constexpr (Vector == 1) {
    return Chunk<T, 1>{{p[0]}};
  } else {
    static_assert(sizeof(Chunk<T, Vector>) == 16, "a chunk is one 16-byte load");
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
    Chunk<T, Vector> chunk;
    memcpy(&chunk, &raw, sizeof(raw));
    return chunk;
  }
}

constexpr int kLineBytes = 128;

// Asks L2 for the `bytes` bytes at `row`, a line per lane at a time (no registers held: the
// loads that follow find the lines there or on their way).
__device__ __forceinline__ void prefetch_row(const void* row, int64_t bytes, int lane) {
  const char* first = static_cast<const char*>(row);
  for (int64_t offset = int64_t(lane) * kLineBytes; offset < bytes; offset += 32 * kLineBytes)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(first + offset));
}

// Waits until the grid this one depends on (launched with programmatic stream serialization) has
// finished and its writes are visible; returns at once when launched without the dependency.
__device__ __forceinline__ void wait_for_previous_grid() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// sums[r][n] += this lane's share of weight row r (null: no such row) dotted with input row n.
template <typename T, int Vector, int ROWS, int UNROLL>
__device__ __forceinline__ void dot_rows(float (&sums)[ROWS][kGemvMaxRows], const T* const (&weights)[ROWS],
                                         const T* inp, int N, int C, int lane) {
  constexpr int step = 32 * Vector;
  for (int c0 = lane * Vector; c0 < C; c0 += UNROLL * step) {
    Chunk<T, Vector> w_chunks[ROWS][UNROLL] = {};  // zeros past the end and for missing rows, never read garbage
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
      for (int u = 0; u < UNROLL; u++)
        if (weights[r] && c0 + u * step < C) w_chunks[r][u] = load_chunk<T, Vector>(weights[r] + c0 + u * step);
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int c = c0 + u * step;
      if (c >= C) break;
#pragma unroll
      for (int n = 0; n < kGemvMaxRows; n++) {
        if (n < N) {
          const Chunk<T, Vector> x = load_chunk<T, Vector>(inp + (int64_t)n * C + c);
#pragma unroll
          for (int r = 0; r < ROWS; r++)
#pragma unroll
            for (int v = 0; v < Vector; v++) sums[r][n] += to_float(w_chunks[r][u].values[v]) * to_float(x.values[v]);
        }
      }
    }
  }
}

// out[n, col] (=, or += when accumulate) = row col of weight . input row n (+ bias[col]) for the
// warp's columns col0.. below OC, every row n < N, written by lane 0.
template <typename T, int Vector, typename Split>
__device__ __forceinline__ void dot_columns(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC,
                                            int col0, bool accumulate) {
  constexpr int K = Split::kColumns;
  const int lane = threadIdx.x % 32;
  const T* rows[K];
#pragma unroll
  for (int k = 0; k < K; k++) rows[k] = col0 + k < OC ? weight + (int64_t)(col0 + k) * C : nullptr;
  float sums[K][kGemvMaxRows] = {};
  dot_rows<T, Vector, K, Split::kUnroll>(sums, rows, inp, N, C, lane);
#pragma unroll
  for (int k = 0; k < K; k++) {
    const int col = col0 + k;
    if (col >= OC) break;  // the same in the whole warp
#pragma unroll
    for (int n = 0; n < kGemvMaxRows; n++) {
      if (n >= N) continue;
      float total = warp_sum(sums[k][n]);
      if (lane != 0) continue;
      if (bias) total += to_float(bias[col]);
      T* o = out + (int64_t)n * OC + col;
      if (accumulate) total += to_float(*o);
      *o = from_float<T>(total);
    }
  }
}

// The first column of this thread's warp, and its rows prefetched.
template <typename T, typename Split>
__device__ __forceinline__ int warp_first_column(int block, const T* weight, int C, int OC) {
  const int col0 = (block * Split::kWarps + int(threadIdx.x) / 32) * Split::kColumns;
  for (int k = 0; k < Split::kColumns && col0 + k < OC; k++)
    prefetch_row(weight + (int64_t)(col0 + k) * C, int64_t(C) * sizeof(T), threadIdx.x % 32);
  return col0;
}

template <typename T, int Vector, typename Split>
__global__ void __launch_bounds__(Split::kWarps * 32)
    gemv_kernel(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate) {
  let_dependents_start();
  const int col0 = warp_first_column<T, Split>(int(blockIdx.x), weight, C, OC);
  wait_for_previous_grid();  // every thread, so that no block can finish before the previous grid
  if (col0 < OC) dot_columns<T, Vector, Split>(out, inp, weight, bias, N, C, OC, col0, accumulate);
}

// The products of gemv_parts_forward, by value (kernel parameter space): part p owns the blocks
// [first_block[p], first_block[p + 1]).
template <typename T>
struct Parts {
  GemvPart<T> part[kGemvMaxParts];
  int first_block[kGemvMaxParts + 1];
  int count;
};

template <typename T, int Vector, typename Split>
__global__ void __launch_bounds__(Split::kWarps * 32) gemv_parts_kernel(Parts<T> parts, const T* inp, int N, int C) {
  let_dependents_start();
  // Selected with constant indices: a dynamic index into kernel parameters copies them to local memory.
  GemvPart<T> part = parts.part[0];
  int first_block = 0;
#pragma unroll
  for (int i = 1; i < kGemvMaxParts; i++) {
    if (i < parts.count && int(blockIdx.x) >= parts.first_block[i]) {
      part = parts.part[i];
      first_block = parts.first_block[i];
    }
  }
  const int col0 = warp_first_column<T, Split>(int(blockIdx.x) - first_block, part.weight, C, part.OC);
  wait_for_previous_grid();
  if (col0 < part.OC) dot_columns<T, Vector, Split>(part.out, inp, part.weight, part.bias, N, C, part.OC, col0, false);
}

__device__ __forceinline__ float silu(float g) { return g * (1.0f / (1.0f + expf(-g))); }  // as swiglu.cu

// Rows 2k and 2k + 1 of a warp are column col0 + k's gate and up rows.
template <typename T, int Vector, typename Split>
__global__ void __launch_bounds__(Split::kWarps * 32)
    gemv_swiglu_kernel(T* out, const T* inp, const T* gate, const T* up, int N, int C, int I) {
  constexpr int K = Split::kColumns;
  let_dependents_start();
  const int lane = threadIdx.x % 32;
  const int col0 = warp_first_column<T, Split>(int(blockIdx.x), gate, C, I);
  for (int k = 0; k < K && col0 + k < I; k++) prefetch_row(up + (int64_t)(col0 + k) * C, int64_t(C) * sizeof(T), lane);
  wait_for_previous_grid();
  if (col0 >= I) return;
  const T* rows[2 * K];
#pragma unroll
  for (int k = 0; k < K; k++) {
    const bool valid = col0 + k < I;
    rows[2 * k] = valid ? gate + (int64_t)(col0 + k) * C : nullptr;
    rows[2 * k + 1] = valid ? up + (int64_t)(col0 + k) * C : nullptr;
  }
  float sums[2 * K][kGemvMaxRows] = {};
  dot_rows<T, Vector, 2 * K, Split::kUnroll>(sums, rows, inp, N, C, lane);
#pragma unroll
  for (int k = 0; k < K; k++) {
    if (col0 + k >= I) break;
#pragma unroll
    for (int n = 0; n < kGemvMaxRows; n++) {
      if (n >= N) continue;
      const float g = to_float(from_float<T>(warp_sum(sums[2 * k][n])));  // rounded as the unfused products are
      const float u = to_float(from_float<T>(warp_sum(sums[2 * k + 1][n])));
      if (lane == 0) out[(int64_t)n * I + col0 + k] = from_float<T>(silu(g) * u);
    }
  }
}

// Whether the current device has programmatic dependent launch (sm_90 on).
inline bool programmatic_launch() { return device_traits().major >= 9; }

// Launches kernel<<<blocks, threads, shared_bytes, stream>>>(args...) as a programmatic dependent
// of the stream's previous kernel (the kernel calls wait_for_previous_grid before reading its
// input); before sm_90, as an ordinary launch.
template <typename... Params, typename... Args>
void launch_dependent(void (*kernel)(Params...), unsigned blocks, int threads, size_t shared_bytes, cudaStream_t stream,
                      Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(unsigned(threads));
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = programmatic_launch() ? 1 : 0;
  DSK_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, Params(args)...));
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whole 16-byte chunks need every row of the weights and of the input to start 16-byte aligned.
template <typename T>
bool whole_chunks(int C, const void* inp, std::initializer_list<const void*> weights) {
  if (!aligned16(inp) || (size_t(C) * sizeof(T)) % 16 != 0) return false;
  for (const void* w : weights)
    if (!aligned16(w)) return false;
  return true;
}

template <typename T, typename Split>
void launch_gemv(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate,
                 cudaStream_t stream) {
  constexpr int kVector = 16 / sizeof(T);
  const auto kernel = whole_chunks<T>(C, inp, {weight}) ? gemv_kernel<T, kVector, Split> : gemv_kernel<T, 1, Split>;
  launch_dependent(kernel, blocks_for(OC, Split::kBlockColumns), Split::kWarps * 32, 0, stream, out, inp, weight, bias,
                   N,
                   C, OC, accumulate);
}

template <typename T, typename Split>
void launch_gemv_parts(const GemvPart<T>* parts, int count, const T* inp, int N, int C, cudaStream_t stream) {
  Parts<T> p{};
  p.count = count;
  bool chunks = true;
  for (int i = 0; i < count; i++) {
    p.part[i] = parts[i];
    p.first_block[i + 1] = p.first_block[i] + int(blocks_for(parts[i].OC, Split::kBlockColumns));
    chunks = chunks && whole_chunks<T>(C, inp, {parts[i].weight});
  }
  if (p.first_block[count] == 0) return;
  constexpr int kVector = 16 / sizeof(T);
  launch_dependent(chunks ? gemv_parts_kernel<T, kVector, Split> : gemv_parts_kernel<T, 1, Split>,
                   unsigned(p.first_block[count]), Split::kWarps * 32, 0, stream, p, inp, N, C);
}

template <typename T, typename Split>
void launch_gemv_swiglu(T* out, const T* inp, const T* gate, const T* up, int N, int C, int I, cudaStream_t stream) {
  constexpr int kVector = 16 / sizeof(T);
  const auto kernel = whole_chunks<T>(C, inp, {gate, up}) ? gemv_swiglu_kernel<T, kVector, Split>
                                                          : gemv_swiglu_kernel<T, 1, Split>;
  launch_dependent(kernel, blocks_for(I, Split::kBlockColumns), Split::kWarps * 32, 0, stream, out, inp, gate, up, N, C,
                   I);
}

}  // namespace dsk::kernels::cuda::gemv
