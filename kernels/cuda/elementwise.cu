// The residual add, gradient accumulation, the fp32 <-> T casts and the strided column copy: one
// thread per W elements (16-byte accesses when the sizes and pointers allow), fp32 arithmetic.
#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// out = a + b (out may alias a or b: each thread reads its values before writing them).
template <typename T, int W>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t packs) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  store_vec(out + p * W, add_vec(load_vec<W>(a + p * W), load_vec<W>(b + p * W)));
}

// out[i] = in[i] converted (float -> T or T -> float).
template <typename Out, typename In, int W>
__global__ void cast_kernel(Out* out, const In* in, int64_t packs) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const Vec<In, W> iv = load_vec<W>(in + p * W);
  Vec<Out, W> ov;
#pragma unroll
  for (int i = 0; i < W; i++) ov[i] = from_float<Out>(to_float(iv[i]));
  store_vec(out + p * W, ov);
}

// One thread per (row n, pack j): out[n, out_offset + jW ..] (+)= in[n, in_offset + jW ..].
template <typename T, int W>
__global__ void copy_columns_kernel(T* out, int out_stride, int out_offset, const T* in, int in_stride, int in_offset,
                                    int N, int width, bool accumulate) {
  const int packs_per_row = width / W;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)N * packs_per_row) return;
  const int n = (int)(index / packs_per_row), column = (int)(index % packs_per_row) * W;
  T* to = out + (int64_t)n * out_stride + out_offset + column;
  const Vec<T, W> v = load_vec<W>(in + (int64_t)n * in_stride + in_offset + column);
  store_vec(to, accumulate ? add_vec(load_vec<W>(to), v) : v);
}

// Casts walk 4 elements at a time: 16 bytes of the fp32 side (the T side is then 8 or 16 bytes).
constexpr int kCastWidth = 4;

template <typename Out, typename In>
void cast(Out* out, const In* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (vectorizable<kCastWidth>(n, out, in))
    cast_kernel<Out, In, kCastWidth><<<blocks_for(n / kCastWidth, kThreads), kThreads, 0, stream>>>(out, in,
                                                                                                    n / kCastWidth);
  else
    cast_kernel<Out, In, 1><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(out, in, n);
  DSK_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(n, out, a, b), [&](auto width) {
    constexpr int W = decltype(width)::value;
    add_kernel<T, W><<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(out, a, b, n / W);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void accumulate(T* out, const T* a, int64_t n, cudaStream_t stream) {
  add(out, out, a, n, stream);
}

template <typename T>
void cast_from_float(T* out, const float* in, int64_t n, cudaStream_t stream) {
  cast(out, in, n, stream);
}

template <typename T>
void cast_to_float(float* out, const T* in, int64_t n, cudaStream_t stream) {
  cast(out, in, n, stream);
}

template <typename T>
void copy_columns(T* out, int out_stride, int out_offset, const T* in, int in_stride, int in_offset, int N, int width,
                  bool accumulate, cudaStream_t stream) {
  if (N == 0 || width == 0) return;
  constexpr int V = vec_width<T>;
  const bool vectorized = vectorizable<V>(width, out, in) && out_stride % V == 0 && out_offset % V == 0 &&
                          in_stride % V == 0 && in_offset % V == 0;
  dispatch_width<T>(vectorized, [&](auto vector_width) {
    constexpr int W = decltype(vector_width)::value;
    copy_columns_kernel<T, W><<<blocks_for((int64_t)N * (width / W), kThreads), kThreads, 0, stream>>>(
        out, out_stride, out_offset, in, in_stride, in_offset, N, width, accumulate);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                           \
  template void add<T>(T*, const T*, const T*, int64_t, cudaStream_t);                               \
  template void accumulate<T>(T*, const T*, int64_t, cudaStream_t);                                  \
  template void cast_from_float<T>(T*, const float*, int64_t, cudaStream_t);                         \
  template void cast_to_float<T>(float*, const T*, int64_t, cudaStream_t);                           \
  template void copy_columns<T>(T*, int, int, const T*, int, int, int, int, bool, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
