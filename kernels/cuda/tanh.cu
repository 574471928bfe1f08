// tanh on the GPU; kernels/cpu/tanh.cpp is the spec: out = tanh(in), din += dout (1 - out^2).
// One thread per W values, fp32 arithmetic.
#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T, int W>
__global__ void tanh_forward_kernel(T* out, const T* in, int64_t packs) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const Vec<T, W> x = load_vec<W>(in + p * W);
  Vec<T, W> o;
#pragma unroll
  for (int i = 0; i < W; i++) o[i] = from_float<T>(tanhf(to_float(x[i])));
  store_vec(out + p * W, o);
}

template <typename T, int W>
__global__ void tanh_backward_kernel(T* din, const T* dout, const T* out, int64_t packs) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const Vec<T, W> d = load_vec<W>(dout + p * W), o = load_vec<W>(out + p * W);
  Vec<T, W> g = load_vec<W>(din + p * W);
#pragma unroll
  for (int i = 0; i < W; i++) {
    const float of = to_float(o[i]);
    g[i] = from_float<T>(to_float(g[i]) + to_float(d[i]) * (1.0f - of * of));
  }
  store_vec(din + p * W, g);
}

}  // namespace

template <typename T>
void tanh_forward(T* out, const T* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(n, out, in), [&](auto width) {
    constexpr int W = decltype(width)::value;
    tanh_forward_kernel<T, W><<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(out, in, n / W);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void tanh_backward(T* din, const T* dout, const T* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(n, din, dout, out), [&](auto width) {
    constexpr int W = decltype(width)::value;
    tanh_backward_kernel<T, W><<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(din, dout, out, n / W);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                        \
  template void tanh_forward<T>(T*, const T*, int64_t, cudaStream_t);             \
  template void tanh_backward<T>(T*, const T*, const T*, int64_t, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
