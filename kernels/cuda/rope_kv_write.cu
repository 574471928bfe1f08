// A decode step's RoPE and KV-cache write in one launch (paged_attention.cuh): the same as
// rope_forward of q and of k, then paged_kv_write of k and of v, which are four small kernels of a
// few microseconds each where the step's whole work per layer is tens of microseconds.
// One thread per (position, head slot, pair): slots [0, H) rotate a query head in place, [H, H +
// KVH) rotate a key head in place and also store it in the pool, [H + KVH, H + 2 KVH) copy a
// value head's pair into the pool. The rotation is rope.cu's (rope_rotation.cuh).
#include "cuda/elementwise.cuh"
#include "cuda/paged_attention.cuh"
#include "cuda/rope_rotation.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void rope_paged_kv_write_kernel(T* q, T* k, const T* v, T* k_pool, T* v_pool, const int32_t* positions,
                                           const int32_t* slots, RopeDevice rope, int N, int H, int KVH, int D) {
  const int half = D / 2, heads = H + 2 * KVH;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)N * heads * half) return;
  const int i = (int)(index % half);
  const int64_t row_head = index / half;
  const int n = (int)(row_head / heads), head = (int)(row_head % heads);
  const auto [ia, ib] = pair_columns(rope, i, half);
  const int64_t row = int64_t(KVH) * D, slot = slots[n];
  if (head >= H + KVH) {  // a value: copied as it is
    const int64_t column = int64_t(head - H - KVH) * D;
    const T* from = v + n * row + column;
    T* to = v_pool + slot * row + column;
    to[ia] = from[ia];
    to[ib] = from[ib];
    return;
  }
  const PairRotation r = pair_rotation(rope, positions[n], i, half, 1.0f);
  T* x = head < H ? q + ((int64_t)n * H + head) * D : k + n * row + int64_t(head - H) * D;
  const float2 rotated = rotate_pair(to_float(x[ia]), to_float(x[ib]), r);
  const T ra = from_float<T>(rotated.x), rb = from_float<T>(rotated.y);
  x[ia] = ra;
  x[ib] = rb;
  if (head < H) return;
  T* to = k_pool + slot * row + int64_t(head - H) * D;
  to[ia] = ra;
  to[ib] = rb;
}

}  // namespace

template <typename T>
void rope_paged_kv_write(T* q, T* k, const T* v, T* k_pool, T* v_pool, const int32_t* positions, const int32_t* slots,
                         const RopeDevice& rope, int N, int H, int KVH, int D, cudaStream_t stream) {
  const int64_t threads = (int64_t)N * (H + 2 * KVH) * (D / 2);
  if (threads == 0) return;
  rope_paged_kv_write_kernel<T><<<blocks_for(threads, kThreads), kThreads, 0, stream>>>(q, k, v, k_pool, v_pool,
                                                                                       positions, slots, rope, N, H,
                                                                                       KVH, D);
  DSK_CUDA_CHECK_LAUNCH();
}

template void rope_paged_kv_write<float>(float*, float*, const float*, float*, float*, const int32_t*, const int32_t*,
                                         const RopeDevice&, int, int, int, int, cudaStream_t);
template void rope_paged_kv_write<bf16>(bf16*, bf16*, const bf16*, bf16*, bf16*, const int32_t*, const int32_t*,
                                        const RopeDevice&, int, int, int, int, cudaStream_t);

}  // namespace dsk::kernels::cuda
