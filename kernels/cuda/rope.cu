// Rotary position embedding in place on the GPU; kernels/cpu/rope.cpp is the spec. One thread per
// (position n, group of G heads, pair i): it computes the angle's cos and sin, loads pair i of
// its G heads, then rotates and stores them (the loads all issued before the first store, which
// could alias them). Few rows (decode: N = 1, 16 heads of 64 pairs) take G = 1, so every pair of
// every head has its own thread and the kernel is one memory round trip rather than H dependent
// ones; many rows (prefill, training) take G = 4 heads a thread, paying the sincos once per 4
// pairs. Every element gets the same formula either way. Backward is the same rotation by the
// negative angle.
#include "cuda/elementwise.cuh"
#include "cuda/rope_rotation.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;
// Below this many (position, head, pair) rotations one thread takes one head (G = 1).
constexpr int64_t kOneHeadPerThreadBelow = int64_t(1) << 18;
constexpr int kHeadsPerThread = 4;  // G above it

// x [N, H, head_stride]; pair i of a head is columns (offset + ia, offset + ib): (i, i + half)
// for rotate_half, (2i, 2i + 1) interleaved. sign = -1 applies the transpose (backward).
// Thread index = (n * head_groups + g) * half + i; group g is heads [g G, min(H, g G + G)).
template <typename T, int G>
__global__ void rope_kernel(T* x, const int32_t* positions, RopeDevice rope, int N, int H, int head_stride,
                            int offset, int half, float sign) {
  const int head_groups = (H + G - 1) / G;
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)N * head_groups * half) return;
  const int i = (int)(index % half);
  const int64_t row_group = index / half;
  const int n = (int)(row_group / head_groups), first_head = (int)(row_group % head_groups) * G;
  const PairRotation r = pair_rotation(rope, positions[n], i, half, sign);
  T* row = x + ((int64_t)n * H + first_head) * head_stride + offset;
  float a[G], b[G];
#pragma unroll
  for (int g = 0; g < G; g++)
    if (first_head + g < H) {
      a[g] = to_float(row[(int64_t)g * head_stride + r.ia]);
      b[g] = to_float(row[(int64_t)g * head_stride + r.ib]);
    }
#pragma unroll
  for (int g = 0; g < G; g++)
    if (first_head + g < H) {
      T* head = row + (int64_t)g * head_stride;
      const float2 rotated = rotate_pair(a[g], b[g], r);
      head[r.ia] = from_float<T>(rotated.x);
      head[r.ib] = from_float<T>(rotated.y);
    }
}

template <typename T, int G>
void launch_rope(T* x, const int32_t* positions, const RopeDevice& rope, int N, int H, int head_stride, int offset,
                 int half, float sign, cudaStream_t stream) {
  const int64_t threads = (int64_t)N * ((H + G - 1) / G) * half;
  rope_kernel<T, G><<<blocks_for(threads, kThreads), kThreads, 0, stream>>>(x, positions, rope, N, H, head_stride,
                                                                            offset, half, sign);
}

template <typename T>
void rotate(T* x, const int32_t* positions, const RopeDevice& rope, int N, int H, int head_stride, int offset,
            int rot_dim, float sign, cudaStream_t stream) {
  const int half = rot_dim / 2;
  const int64_t rotations = (int64_t)N * H * half;
  if (rotations == 0) return;
  if (rotations < kOneHeadPerThreadBelow)
    launch_rope<T, 1>(x, positions, rope, N, H, head_stride, offset, half, sign, stream);
  else
    launch_rope<T, kHeadsPerThread>(x, positions, rope, N, H, head_stride, offset, half, sign, stream);
  DSK_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename T>
void rope_forward(T* x, const int32_t* positions, const RopeDevice& rope, int N, int H, int head_stride, int offset,
                  int rot_dim, cudaStream_t stream) {
  rotate(x, positions, rope, N, H, head_stride, offset, rot_dim, 1.0f, stream);
}

template <typename T>
void rope_backward(T* dx, const int32_t* positions, const RopeDevice& rope, int N, int H, int head_stride,
                   int offset, int rot_dim, cudaStream_t stream) {
  rotate(dx, positions, rope, N, H, head_stride, offset, rot_dim, -1.0f, stream);
}

#define DSK_INSTANTIATE(T)                                                                                \
  template void rope_forward<T>(T*, const int32_t*, const RopeDevice&, int, int, int, int, int, cudaStream_t); \
  template void rope_backward<T>(T*, const int32_t*, const RopeDevice&, int, int, int, int, int, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
