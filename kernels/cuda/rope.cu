// Rotary position embedding in place on the GPU; kernels/cpu/rope.cpp is the spec. One thread per
// (position n, pair i): it computes the angle's cos and sin once and rotates pair i of every head,
// so the sincos is paid once per H pairs. Backward is the same rotation by the negative angle.
#include "cuda/elementwise.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// x [N, H, head_stride]; pair i of a head is columns (offset + ia, offset + ib): (i, i + half)
// for rotate_half, (2i, 2i + 1) interleaved. sign = -1 applies the transpose (backward).
template <typename T>
__global__ void rope_kernel(T* x, const int32_t* positions, RopeDevice rope, int N, int H, int head_stride,
                            int offset, int half, float sign) {
  const int64_t index = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= (int64_t)N * half) return;
  const int n = (int)(index / half), i = (int)(index % half);
  const float angle = (float)positions[n] * rope.inv_freq[i];
  float sin_a, cos_a;
  sincosf(angle, &sin_a, &cos_a);
  cos_a = cos_a * rope.attention_factor;
  sin_a = sign * sin_a * rope.attention_factor;
  const int ia = rope.interleaved ? 2 * i : i;
  const int ib = rope.interleaved ? 2 * i + 1 : i + half;
  T* row = x + (int64_t)n * H * head_stride + offset;
  for (int h = 0; h < H; h++) {
    T* head = row + (int64_t)h * head_stride;
    const float a = to_float(head[ia]), b = to_float(head[ib]);
    head[ia] = from_float<T>(a * cos_a - b * sin_a);
    head[ib] = from_float<T>(a * sin_a + b * cos_a);
  }
}

template <typename T>
void rotate(T* x, const int32_t* positions, const RopeDevice& rope, int N, int H, int head_stride, int offset,
            int rot_dim, float sign, cudaStream_t stream) {
  const int half = rot_dim / 2;
  const int64_t pairs = (int64_t)N * half;
  if (pairs == 0 || H == 0) return;
  rope_kernel<T><<<blocks_for(pairs, kThreads), kThreads, 0, stream>>>(x, positions, rope, N, H, head_stride, offset,
                                                                       half, sign);
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
