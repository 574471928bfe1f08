// Scaled dropout on the GPU; kernels/cpu/dropout.cpp is the spec: out[i] = keep(seed, i) ?
// in[i] * factor : 0, backward din[i] += the same of dout[i]. The mask bits are those of
// cpu::dropout_keeps (splitmix64's finalizer of seed + (i + 1) * golden ratio), so both backends
// drop the same elements and backward re-derives the mask instead of storing it.
#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ bool keeps(uint64_t seed, uint64_t i, uint32_t threshold) {
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return threshold == 0 || uint32_t(z >> 32) >= threshold;
}

template <typename T, int W>
__global__ void dropout_forward_kernel(T* out, const T* in, int64_t packs, float factor, uint32_t threshold,
                                       uint64_t seed) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const Vec<T, W> x = load_vec<W>(in + p * W);
  Vec<T, W> o;
#pragma unroll
  for (int i = 0; i < W; i++)
    o[i] = from_float<T>(keeps(seed, uint64_t(p * W + i), threshold) ? to_float(x[i]) * factor : 0.0f);
  store_vec(out + p * W, o);
}

template <typename T, int W>
__global__ void dropout_backward_kernel(T* din, const T* dout, int64_t packs, float factor, uint32_t threshold,
                                        uint64_t seed) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const Vec<T, W> d = load_vec<W>(dout + p * W);
  Vec<T, W> g = load_vec<W>(din + p * W);
#pragma unroll
  for (int i = 0; i < W; i++)
    if (keeps(seed, uint64_t(p * W + i), threshold))  // unfused, as the CPU rounds: product, then sum
      g[i] = from_float<T>(__fadd_rn(to_float(g[i]), __fmul_rn(to_float(d[i]), factor)));
  store_vec(din + p * W, g);
}

// Both kernels take (written, read, packs, factor, threshold, seed) and walk the same packs: one
// launcher, which picks the vector width from n and both pointers.
template <bool kBackward, typename T>
void launch_dropout(T* written, const T* read, int64_t n, float factor, uint32_t threshold, uint64_t seed,
                    cudaStream_t stream) {
  if (n == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(n, written, read), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const auto kernel = kBackward ? dropout_backward_kernel<T, W> : dropout_forward_kernel<T, W>;
    kernel<<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(written, read, n / W, factor, threshold, seed);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename T>
void dropout_forward(T* out, const T* in, int64_t n, float factor, uint32_t threshold, uint64_t seed,
                     cudaStream_t stream) {
  launch_dropout</*kBackward=*/false>(out, in, n, factor, threshold, seed, stream);
}

template <typename T>
void dropout_backward(T* din, const T* dout, int64_t n, float factor, uint32_t threshold, uint64_t seed,
                      cudaStream_t stream) {
  launch_dropout</*kBackward=*/true>(din, dout, n, factor, threshold, seed, stream);
}

#define DSK_INSTANTIATE(T)                                                                            \
  template void dropout_forward<T>(T*, const T*, int64_t, float, uint32_t, uint64_t, cudaStream_t);  \
  template void dropout_backward<T>(T*, const T*, int64_t, float, uint32_t, uint64_t, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
