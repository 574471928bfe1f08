// Few-row linear layers (gemv.cuh): one warp per output column, all rows at once.
#include <cstdint>

#include "cuda/gemv.cuh"

#include "core/error.hpp"

namespace dsk::kernels::cuda {

namespace {

constexpr int kWarps = 8;  // output columns per block

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

template <typename T, int Vector>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate) {
  const int lane = threadIdx.x % 32;
  const int col = blockIdx.x * kWarps + threadIdx.x / 32;
  if (col >= OC) return;
  const T* w = weight + (int64_t)col * C;
  float sums[kGemvMaxRows] = {};
  constexpr int kUnroll = 4;  // loads in flight per lane
  constexpr int step = 32 * Vector;
  int c = lane * Vector;
  for (; c + (kUnroll - 1) * step < C; c += kUnroll * step) {
    Chunk<T, Vector> w_chunks[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) w_chunks[u] = load_chunk<T, Vector>(w + c + u * step);
#pragma unroll
    for (int u = 0; u < kUnroll; u++)
#pragma unroll
      for (int n = 0; n < kGemvMaxRows; n++) {
        if (n < N) {
          const Chunk<T, Vector> x = load_chunk<T, Vector>(inp + (int64_t)n * C + c + u * step);
#pragma unroll
          for (int v = 0; v < Vector; v++) sums[n] += to_float(w_chunks[u].values[v]) * to_float(x.values[v]);
        }
      }
  }
  for (; c < C; c += step) {
    const Chunk<T, Vector> w_chunk = load_chunk<T, Vector>(w + c);
#pragma unroll
    for (int n = 0; n < kGemvMaxRows; n++) {
      if (n < N) {
        const Chunk<T, Vector> x = load_chunk<T, Vector>(inp + (int64_t)n * C + c);
#pragma unroll
        for (int v = 0; v < Vector; v++) sums[n] += to_float(w_chunk.values[v]) * to_float(x.values[v]);
      }
    }
  }
#pragma unroll
  for (int n = 0; n < kGemvMaxRows; n++) {
    if (n >= N) continue;  // N is the same in the whole warp
    float total = warp_sum(sums[n]);
    if (lane != 0) continue;
    if (bias) total += to_float(bias[col]);
    T* o = out + (int64_t)n * OC + col;
    if (accumulate) total += to_float(*o);
    *o = from_float<T>(total);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

template <typename T>
void gemv_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate,
                  cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return;
  if (N > kGemvMaxRows) throw InternalError("gemv_forward: more rows than kGemvMaxRows");
  constexpr int kVector = 16 / sizeof(T);
  const unsigned blocks = blocks_for(OC, kWarps);
  // Whole 16-byte chunks need every row of the weight and of the input to start 16-byte aligned.
  if (aligned16(weight) && aligned16(inp) && (size_t(C) * sizeof(T)) % 16 == 0)
    gemv_kernel<T, kVector><<<blocks, kWarps * 32, 0, stream>>>(out, inp, weight, bias, N, C, OC, accumulate);
  else
    gemv_kernel<T, 1><<<blocks, kWarps * 32, 0, stream>>>(out, inp, weight, bias, N, C, OC, accumulate);
  DSK_CUDA_CHECK_LAUNCH();
}

template void gemv_forward<float>(float*, const float*, const float*, const float*, int, int, int, bool, cudaStream_t);
template void gemv_forward<bf16>(bf16*, const bf16*, const bf16*, const bf16*, int, int, int, bool, cudaStream_t);

}  // namespace dsk::kernels::cuda
