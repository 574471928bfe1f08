// What the memory-bound kernels (elementwise.cuh, adamw.cuh, cross_entropy.cuh) share: W-wide
// vector access, 16-byte loads and stores where the sizes and pointers allow and one element at a
// time where they do not (odd C in the tiny fixtures), and reductions whose order is fixed (the
// same shuffle pattern and shared-memory order every run), so the same inputs give the same bits.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

// W consecutive elements of E moved as one access of W * sizeof(E) bytes.
template <typename E, int W>
struct alignas(sizeof(E) * W) Vec {
  E values[W];
  __device__ __forceinline__ E& operator[](int i) { return values[i]; }
  __device__ __forceinline__ const E& operator[](int i) const { return values[i]; }
};

template <int W, typename E>
__device__ __forceinline__ Vec<E, W> load_vec(const E* p) {
  return *reinterpret_cast<const Vec<E, W>*>(p);
}
template <int W, typename E>
__device__ __forceinline__ void store_vec(E* p, const Vec<E, W>& v) {
  *reinterpret_cast<Vec<E, W>*>(p) = v;
}

// a + b element by element, in fp32, rounded to T.
template <typename T, int W>
__device__ __forceinline__ Vec<T, W> add_vec(const Vec<T, W>& a, const Vec<T, W>& b) {
  Vec<T, W> sum;
#pragma unroll
  for (int i = 0; i < W; i++) sum[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
  return sum;
}

// W elements of E held as the 32-bit words they load as (when W * sizeof(E) is a multiple of 4),
// for vectors that wait in registers (loads batched ahead of their use): a Vec of bf16 tends to be
// split into one register per element, the words stay packed (a 16-byte vector: 4 registers).
template <typename E, int W>
struct Packed {
  static constexpr bool kWords = W * sizeof(E) % 4 == 0;
  using Storage = std::conditional_t<kWords, Vec<uint32_t, kWords ? W * sizeof(E) / 4 : 1>, Vec<E, W>>;
  Storage data;
  __device__ __forceinline__ void load(const E* p) { data = *reinterpret_cast<const Storage*>(p); }
  // Element i as a float (i a compile-time index after unrolling).
  __device__ __forceinline__ float operator[](int i) const {
    if constexpr (!kWords) {
      return to_float(data[i]);
    } else if constexpr (std::is_same_v<E, float>) {
      return __uint_as_float(data[i]);
    } else {  // bf16: the low half of a word is the even element
      const uint32_t word = data[i / 2];
      return __uint_as_float(i % 2 == 0 ? word << 16 : word & 0xffff0000u);
    }
  }
};

// Elements of E in one 16-byte access.
template <typename E>
constexpr int vec_width = int(16 / sizeof(E));

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// True when n elements can be walked W at a time through every pointer: n is a multiple of W and
// each pointer is aligned to W of its elements. Null pointers (optional operands) pass.
template <int W, typename... E>
bool vectorizable(int64_t n, const E*... pointers) {
  return n % W == 0 && (aligned_to(pointers, W * sizeof(E)) && ...);
}

// Calls launch(std::integral_constant<int, W>) with W = the 16-byte width of T when `vectorized`,
// else W = 1: the launchers' one switch between the fast path and the scalar fallback.
template <typename T, typename Launch>
void dispatch_width(bool vectorized, Launch&& launch) {
  if (vectorized)
    launch(std::integral_constant<int, vec_width<T>>{});
  else
    launch(std::integral_constant<int, 1>{});
}

struct Sum {
  template <typename F>
  __device__ __forceinline__ F operator()(F a, F b) const { return a + b; }
};
struct Max {
  template <typename F>
  __device__ __forceinline__ F operator()(F a, F b) const { return a > b ? a : b; }
};

// Every lane gets op over the warp's 32 values (butterfly order: fixed).
template <typename Op, typename F>
__device__ __forceinline__ F warp_reduce(F x, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

// Every thread gets op over the block's values: warps first, then warp 0 over the warp results.
// blockDim.x must be a multiple of 32 (at most 1024), and every thread of the block must call it.
// `identity` pads the missing warps (0 for Sum, -inf for Max).
template <typename Op, typename F>
__device__ F block_reduce(F x, Op op, F identity) {
  __shared__ F warp_results[32];
  __shared__ F result;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_reduce(x, op);
  if (lane == 0) warp_results[warp] = x;
  __syncthreads();
  if (warp == 0) {
    F y = warp_reduce(lane < warps ? warp_results[lane] : identity, op);
    if (lane == 0) result = y;
  }
  __syncthreads();
  // A second call may overwrite warp_results only after its own first barrier, which every
  // thread reaches after reading `result` here: no third barrier needed.
  return result;
}

}  // namespace dsk::kernels::cuda
