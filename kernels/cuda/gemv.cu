// Few-row linear layers (gemv.cuh): one warp per output column, all rows at once.
//
// The weights do not depend on the previous op, only the input rows do. So the kernels are
// launched as programmatic dependents (PDL, sm_90): their blocks may start while the previous
// kernel still runs, ask L2 for their weight rows at once, and only then wait for the previous
// grid (griddepcontrol.wait) before reading the input. A decode step is a chain of small kernels;
// this overlaps each one's weight fetch with the tail of the one before.
#include <cstdint>

#include "cuda/gemv.cuh"

#include "core/error.hpp"

namespace dsk::kernels::cuda {

namespace {

constexpr int kWarps = 8;   // output columns per block
constexpr int kUnroll = 8;  // 16-byte weight loads in flight per lane and weight row (a 2048-wide row: all of it)

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

// Lets the stream's next kernel, when launched as a dependent, start its blocks now (they wait
// for this grid's end themselves before reading what it writes).
__device__ __forceinline__ void allow_dependents() { asm volatile("griddepcontrol.launch_dependents;"); }

// Waits until the grid this one depends on (launch_dependent) has finished and its writes are
// visible; returns at once when launched without the dependency.
__device__ __forceinline__ void wait_for_previous_grid() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// sums[r][n] += this lane's share of weight row r (ROWS rows of one warp, read together so that
// their loads are in flight at once) dotted with input row n. A lane takes the chunks lane,
// lane + 32, ... in increasing order whatever the unrolling, so the sums do not depend on it.
template <typename T, int Vector, int ROWS>
__device__ __forceinline__ void dot_rows(float (&sums)[ROWS][kGemvMaxRows], const T* const (&weights)[ROWS],
                                         const T* inp, int N, int C, int lane) {
  constexpr int step = 32 * Vector;
  int c = lane * Vector;
  for (; c + (kUnroll - 1) * step < C; c += kUnroll * step) {
    Chunk<T, Vector> w_chunks[ROWS][kUnroll];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
      for (int u = 0; u < kUnroll; u++) w_chunks[r][u] = load_chunk<T, Vector>(weights[r] + c + u * step);
#pragma unroll
    for (int u = 0; u < kUnroll; u++)
#pragma unroll
      for (int n = 0; n < kGemvMaxRows; n++) {
        if (n < N) {
          const Chunk<T, Vector> x = load_chunk<T, Vector>(inp + (int64_t)n * C + c + u * step);
#pragma unroll
          for (int r = 0; r < ROWS; r++)
#pragma unroll
            for (int v = 0; v < Vector; v++) sums[r][n] += to_float(w_chunks[r][u].values[v]) * to_float(x.values[v]);
        }
      }
  }
  for (; c < C; c += step) {
    Chunk<T, Vector> w_chunks[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) w_chunks[r] = load_chunk<T, Vector>(weights[r] + c);
#pragma unroll
    for (int n = 0; n < kGemvMaxRows; n++) {
      if (n < N) {
        const Chunk<T, Vector> x = load_chunk<T, Vector>(inp + (int64_t)n * C + c);
#pragma unroll
        for (int r = 0; r < ROWS; r++)
#pragma unroll
          for (int v = 0; v < Vector; v++) sums[r][n] += to_float(w_chunks[r].values[v]) * to_float(x.values[v]);
      }
    }
  }
}

// out[n, col] (=, or += when accumulate) = row col of weight . input row n (+ bias[col]), every
// row n < N, written by lane 0.
template <typename T, int Vector>
__device__ __forceinline__ void dot_column(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC,
                                           int col, bool accumulate) {
  const int lane = threadIdx.x % 32;
  const T* const rows[1] = {weight + (int64_t)col * C};
  float sums[1][kGemvMaxRows] = {};
  dot_rows<T, Vector, 1>(sums, rows, inp, N, C, lane);
#pragma unroll
  for (int n = 0; n < kGemvMaxRows; n++) {
    if (n >= N) continue;  // N is the same in the whole warp
    float total = warp_sum(sums[0][n]);
    if (lane != 0) continue;
    if (bias) total += to_float(bias[col]);
    T* o = out + (int64_t)n * OC + col;
    if (accumulate) total += to_float(*o);
    *o = from_float<T>(total);
  }
}

template <typename T, int Vector>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate) {
  allow_dependents();
  const int col = blockIdx.x * kWarps + threadIdx.x / 32;
  if (col < OC) prefetch_row(weight + (int64_t)col * C, int64_t(C) * sizeof(T), threadIdx.x % 32);
  wait_for_previous_grid();  // every thread, so that no block can finish before the previous grid
  if (col >= OC) return;
  dot_column<T, Vector>(out, inp, weight, bias, N, C, OC, col, accumulate);
}

// The products of gemv_parts_forward, by value (kernel parameter space): part p owns the blocks
// [first_block[p], first_block[p + 1]).
template <typename T>
struct Parts {
  GemvPart<T> part[kGemvMaxParts];
  int first_block[kGemvMaxParts + 1];
  int count;
};

template <typename T, int Vector>
__global__ void __launch_bounds__(kWarps * 32) gemv_parts_kernel(Parts<T> parts, const T* inp, int N, int C) {
  allow_dependents();
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
  const int col = (int(blockIdx.x) - first_block) * kWarps + threadIdx.x / 32;
  if (col < part.OC) prefetch_row(part.weight + (int64_t)col * C, int64_t(C) * sizeof(T), threadIdx.x % 32);
  wait_for_previous_grid();
  if (col >= part.OC) return;
  dot_column<T, Vector>(part.out, inp, part.weight, part.bias, N, C, part.OC, col, false);
}

__device__ __forceinline__ float silu(float g) { return g * (1.0f / (1.0f + expf(-g))); }  // as swiglu.cu

template <typename T, int Vector>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_swiglu_kernel(T* out, const T* inp, const T* gate, const T* up, int N, int C, int I) {
  allow_dependents();
  const int col = blockIdx.x * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (col < I) {
    prefetch_row(gate + (int64_t)col * C, int64_t(C) * sizeof(T), lane);
    prefetch_row(up + (int64_t)col * C, int64_t(C) * sizeof(T), lane);
  }
  wait_for_previous_grid();
  if (col >= I) return;
  const T* const rows[2] = {gate + (int64_t)col * C, up + (int64_t)col * C};
  float sums[2][kGemvMaxRows] = {};
  dot_rows<T, Vector, 2>(sums, rows, inp, N, C, lane);
#pragma unroll
  for (int n = 0; n < kGemvMaxRows; n++) {
    if (n >= N) continue;
    const float g = to_float(from_float<T>(warp_sum(sums[0][n])));  // rounded as the unfused products are
    const float u = to_float(from_float<T>(warp_sum(sums[1][n])));
    if (lane == 0) out[(int64_t)n * I + col] = from_float<T>(silu(g) * u);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Launches kernel<<<blocks, kWarps * 32, 0, stream>>>(args...) as a programmatic dependent of the
// stream's previous kernel (the kernel must call wait_for_previous_grid before reading its input).
template <typename... Params, typename... Args>
void launch_dependent(void (*kernel)(Params...), unsigned blocks, cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(kWarps * 32);
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  DSK_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, Params(args)...));
}

// Whole 16-byte chunks need every row of the weights and of the input to start 16-byte aligned.
template <typename T>
bool whole_chunks(int C, const void* inp, std::initializer_list<const void*> weights) {
  if (!aligned16(inp) || (size_t(C) * sizeof(T)) % 16 != 0) return false;
  for (const void* w : weights)
    if (!aligned16(w)) return false;
  return true;
}

void check_rows(int N, const char* op) {
  if (N > kGemvMaxRows) throw InternalError(str(op, ": ", N, " rows, more than kGemvMaxRows"));
}

}  // namespace

template <typename T>
void gemv_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate,
                  cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return;
  check_rows(N, "gemv_forward");
  constexpr int kVector = 16 / sizeof(T);
  const unsigned blocks = blocks_for(OC, kWarps);
  const auto kernel = whole_chunks<T>(C, inp, {weight}) ? gemv_kernel<T, kVector> : gemv_kernel<T, 1>;
  launch_dependent(kernel, blocks, stream, out, inp, weight, bias, N, C, OC, accumulate);
}

template <typename T>
void gemv_parts_forward(const GemvPart<T>* parts, int count, const T* inp, int N, int C, cudaStream_t stream) {
  if (N <= 0 || count <= 0) return;
  check_rows(N, "gemv_parts_forward");
  if (count > kGemvMaxParts) throw InternalError(str("gemv_parts_forward: ", count, " parts, more than kGemvMaxParts"));
  Parts<T> p{};
  p.count = count;
  bool chunks = true;
  for (int i = 0; i < count; i++) {
    p.part[i] = parts[i];
    p.first_block[i + 1] = p.first_block[i] + int(blocks_for(parts[i].OC, kWarps));
    chunks = chunks && whole_chunks<T>(C, inp, {parts[i].weight});
  }
  if (p.first_block[count] == 0) return;
  constexpr int kVector = 16 / sizeof(T);
  launch_dependent(chunks ? gemv_parts_kernel<T, kVector> : gemv_parts_kernel<T, 1>, unsigned(p.first_block[count]),
                   stream, p, inp, N, C);
}

template <typename T>
void gemv_swiglu_forward(T* out, const T* inp, const T* gate, const T* up, int N, int C, int I, cudaStream_t stream) {
  if (N <= 0 || I <= 0) return;
  check_rows(N, "gemv_swiglu_forward");
  constexpr int kVector = 16 / sizeof(T);
  const unsigned blocks = blocks_for(I, kWarps);
  const auto kernel = whole_chunks<T>(C, inp, {gate, up}) ? gemv_swiglu_kernel<T, kVector> : gemv_swiglu_kernel<T, 1>;
  launch_dependent(kernel, blocks, stream, out, inp, gate, up, N, C, I);
}

#define DSK_INSTANTIATE(T)                                                                                   \
  template void gemv_forward<T>(T*, const T*, const T*, const T*, int, int, int, bool, cudaStream_t);       \
  template void gemv_parts_forward<T>(const GemvPart<T>*, int, const T*, int, int, cudaStream_t);           \
  template void gemv_swiglu_forward<T>(T*, const T*, const T*, const T*, int, int, int, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
