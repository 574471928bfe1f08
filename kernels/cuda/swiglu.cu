// SwiGLU on the GPU; kernels/cpu/swiglu.cpp is the spec: out = silu(gate) * up with
// silu(g) = g sigmoid(g), d silu(g)/dg = s (1 + g (1 - s)). One thread per W values.
#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <typename T, int W>
__global__ void swiglu_forward_kernel(T* out, const T* gate, const T* up, int64_t packs) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const Vec<T, W> g = load_vec<W>(gate + p * W), u = load_vec<W>(up + p * W);
  Vec<T, W> o;
#pragma unroll
  for (int i = 0; i < W; i++) {
    const float gf = to_float(g[i]);
    o[i] = from_float<T>(gf * sigmoid(gf) * to_float(u[i]));
  }
  store_vec(out + p * W, o);
}

template <typename T, int W>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t packs) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const Vec<T, W> d = load_vec<W>(dout + p * W), g = load_vec<W>(gate + p * W), u = load_vec<W>(up + p * W);
  Vec<T, W> dg = load_vec<W>(dgate + p * W), du = load_vec<W>(dup + p * W);
#pragma unroll
  for (int i = 0; i < W; i++) {
    const float gf = to_float(g[i]), df = to_float(d[i]), s = sigmoid(gf);
    dg[i] = from_float<T>(to_float(dg[i]) + df * to_float(u[i]) * s * (1.0f + gf * (1.0f - s)));
    du[i] = from_float<T>(to_float(du[i]) + df * gf * s);
  }
  store_vec(dgate + p * W, dg);
  store_vec(dup + p * W, du);
}

}  // namespace

template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(n, out, gate, up), [&](auto width) {
    constexpr int W = decltype(width)::value;
    swiglu_forward_kernel<T, W><<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(out, gate, up, n / W);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(n, dgate, dup, dout, gate, up), [&](auto width) {
    constexpr int W = decltype(width)::value;
    swiglu_backward_kernel<T, W>
        <<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(dgate, dup, dout, gate, up, n / W);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t, cudaStream_t);         \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
