// DeepSeek MLA's per-head keys and values from the kv_b projection and the shared rope key, and
// the backward that routes their gradients back; lib/model/layers.cpp (mla_project and
// mla_project_backward) holds the same loops on the CPU. Pure data movement, W elements a thread.
//   kv_b [N, H, nope + Dv], kv_a [N, kv_rank + R]  ->  k [N, H, nope + R], v [N, H, Dv]
#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

struct MlaShape {
  int N, H, nope, R, Dv, kv_rank;
  __host__ __device__ int k_row() const { return nope + R; }      // per (n, h)
  __host__ __device__ int kv_b_row() const { return nope + Dv; }  // per (n, h)
  __host__ __device__ int kv_a_row() const { return kv_rank + R; }
};

// One thread per (n, h, pack) of the output row [k (nope + R) | v (Dv)] of head h.
template <typename T, int W>
__global__ void mla_expand_forward_kernel(T* k, T* v, const T* kv_b, const T* kv_a, MlaShape s) {
  const int packs_per_head = (s.k_row() + s.Dv) / W;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)s.N * s.H * packs_per_head) return;
  const int64_t head = index / packs_per_head;  // n * H + h
  const int column = (int)(index % packs_per_head) * W;
  const int64_t n = head / s.H;
  const T* kv_b_head = kv_b + head * s.kv_b_row();
  if (column < s.nope)
    store_vec(k + head * s.k_row() + column, load_vec<W>(kv_b_head + column));
  else if (column < s.k_row())
    store_vec(k + head * s.k_row() + column, load_vec<W>(kv_a + n * s.kv_a_row() + s.kv_rank + column - s.nope));
  else
    store_vec(v + head * s.Dv + column - s.k_row(), load_vec<W>(kv_b_head + s.nope + column - s.k_row()));
}

// Per position n, one thread per pack of dkv_b's H rows (nope from dk, Dv from dv) and one per
// pack of the rope key, which sums dk's rope part over the heads in head order.
template <typename T, int W>
__global__ void mla_expand_backward_kernel(T* dkv_b, T* dkv_a, const T* dk, const T* dv, MlaShape s) {
  const int kv_b_packs = s.H * s.kv_b_row() / W;
  const int packs_per_position = kv_b_packs + s.R / W;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)s.N * packs_per_position) return;
  const int64_t n = index / packs_per_position;
  const int pack = (int)(index % packs_per_position);
  if (pack < kv_b_packs) {
    const int h = pack / (s.kv_b_row() / W), column = pack % (s.kv_b_row() / W) * W;
    const int64_t head = n * s.H + h;
    T* to = dkv_b + head * s.kv_b_row() + column;
    const T* from = column < s.nope ? dk + head * s.k_row() + column : dv + head * s.Dv + column - s.nope;
    store_vec(to, add_vec(load_vec<W>(to), load_vec<W>(from)));
    return;
  }
  const int r = (pack - kv_b_packs) * W;
  float sum[W] = {};
  for (int h = 0; h < s.H; h++) {
    const Vec<T, W> d = load_vec<W>(dk + (n * s.H + h) * s.k_row() + s.nope + r);
#pragma unroll
    for (int i = 0; i < W; i++) sum[i] += to_float(d[i]);
  }
  T* to = dkv_a + n * s.kv_a_row() + s.kv_rank + r;
  Vec<T, W> total = load_vec<W>(to);
#pragma unroll
  for (int i = 0; i < W; i++) total[i] = from_float<T>(to_float(total[i]) + sum[i]);
  store_vec(to, total);
}

// W = 16 bytes of T when every width and offset is a multiple of it and the pointers allow.
template <typename T, typename... Pointers>
bool mla_vectorizable(const MlaShape& s, Pointers... pointers) {
  constexpr int V = vec_width<T>;
  return vectorizable<V>(s.nope, pointers...) && s.R % V == 0 && s.Dv % V == 0 && s.kv_rank % V == 0;
}

}  // namespace

template <typename T>
void mla_expand_forward(T* k, T* v, const T* kv_b, const T* kv_a, int N, int H, int nope, int R, int Dv, int kv_rank,
                        cudaStream_t stream) {
  const MlaShape s{N, H, nope, R, Dv, kv_rank};
  if ((int64_t)N * H * (nope + R + Dv) == 0) return;
  dispatch_width<T>(mla_vectorizable<T>(s, k, v, kv_b, kv_a), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const int64_t threads = (int64_t)N * H * ((nope + R + Dv) / W);
    mla_expand_forward_kernel<T, W><<<blocks_for(threads, kThreads), kThreads, 0, stream>>>(k, v, kv_b, kv_a, s);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void mla_expand_backward(T* dkv_b, T* dkv_a, const T* dk, const T* dv, int N, int H, int nope, int R, int Dv,
                         int kv_rank, cudaStream_t stream) {
  const MlaShape s{N, H, nope, R, Dv, kv_rank};
  if ((int64_t)N * H * (nope + R + Dv) == 0) return;
  dispatch_width<T>(mla_vectorizable<T>(s, dkv_b, dkv_a, dk, dv), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const int64_t threads = (int64_t)N * ((int64_t)H * (nope + Dv) / W + R / W);
    mla_expand_backward_kernel<T, W><<<blocks_for(threads, kThreads), kThreads, 0, stream>>>(dkv_b, dkv_a, dk, dv, s);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                                     \
  template void mla_expand_forward<T>(T*, T*, const T*, const T*, int, int, int, int, int, int, cudaStream_t); \
  template void mla_expand_backward<T>(T*, T*, const T*, const T*, int, int, int, int, int, int, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
