// The fused AdamW step and the gradient norm on the GPU; kernels/cpu/adamw.cpp is the spec (the
// same formulas in the same order, rounded alike: the fp32 state equals the CPU's). One thread per 4
// parameters (16-byte loads of the fp32 state). The norm's sum of squares is deterministic: a
// grid fixed by n alone, double per-thread sums, fixed-order block reductions, then one block adds
// the block partials in order.
#include <algorithm>

#include "cuda/adamw.cuh"
#include "cuda/cross_entropy.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWidth = vec_width<float>;  // 4: 16 bytes of fp32
constexpr int kMaxNormBlocks = 1024;

template <typename T, int W>
__global__ void adamw_kernel(float* params, T* working, const float* grads, float* m, float* v,
                             const uint8_t* decay_mask, int64_t packs, AdamWStep s) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  const int64_t at = p * W;
  Vec<float, W> param = load_vec<W>(params + at), mv = load_vec<W>(m + at), vv = load_vec<W>(v + at);
  const Vec<float, W> grad = load_vec<W>(grads + at);
  Vec<uint8_t, W> decay;
#pragma unroll
  for (int i = 0; i < W; i++) decay[i] = 1;
  if (decay_mask) decay = load_vec<W>(decay_mask + at);
#pragma unroll
  for (int i = 0; i < W; i++) {
    // kernels/cpu/adamw.cpp's expressions, each operation rounded alone (__f*_rn: never fused).
    const float g = grad[i];
    mv[i] = __fadd_rn(__fmul_rn(s.beta1, mv[i]), __fmul_rn(1.0f - s.beta1, g));
    vv[i] = __fadd_rn(__fmul_rn(s.beta2, vv[i]), __fmul_rn(__fmul_rn(1.0f - s.beta2, g), g));
    const float m_hat = (float)((double)mv[i] / s.bias_correction1);
    const float v_hat = (float)((double)vv[i] / s.bias_correction2);
    const float weight_decay = decay[i] ? __fmul_rn(s.weight_decay, param[i]) : 0.0f;
    const float update = __fadd_rn(__fdiv_rn(m_hat, __fadd_rn(__fsqrt_rn(v_hat), s.eps)), weight_decay);
    param[i] = __fsub_rn(param[i], __fmul_rn(s.lr, update));
  }
  store_vec(params + at, param);
  store_vec(m + at, mv);
  store_vec(v + at, vv);
  if (!working) return;
  Vec<T, W> copy;
#pragma unroll
  for (int i = 0; i < W; i++) copy[i] = from_float<T>(param[i]);
  store_vec(working + at, copy);
}

// partials[block] = sum of grads[i]^2 over the block's grid-stride share.
template <int W>
__global__ void sum_of_squares_kernel(float* partials, const float* grads, int64_t packs) {
  double sum = 0;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < packs; p += (int64_t)gridDim.x * blockDim.x) {
    const Vec<float, W> g = load_vec<W>(grads + p * W);
#pragma unroll
    for (int i = 0; i < W; i++) sum += double(g[i]) * g[i];
  }
  sum = block_reduce(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) partials[blockIdx.x] = (float)sum;
}

template <int W>
__global__ void scale_kernel(float* values, float scale, int64_t packs) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= packs) return;
  Vec<float, W> x = load_vec<W>(values + p * W);
#pragma unroll
  for (int i = 0; i < W; i++) x[i] *= scale;
  store_vec(values + p * W, x);
}

// One block per kThreads * kWidth values, at most kMaxNormBlocks (then each thread loops).
int norm_blocks(int64_t n) {
  const int64_t per_block = kThreads * kWidth;
  return (int)std::max<int64_t>(1, std::min<int64_t>(kMaxNormBlocks, (n + per_block - 1) / per_block));
}

}  // namespace

template <typename T>
void adamw_step(float* params, T* working, const float* grads, float* m, float* v, const uint8_t* decay_mask,
                int64_t n, const AdamWStep& step, cudaStream_t stream) {
  if (n == 0) return;
  const bool vectorized = vectorizable<kWidth>(n, params, grads, m, v, working, decay_mask);
  dispatch_width<float>(vectorized, [&](auto width) {
    constexpr int W = decltype(width)::value;
    adamw_kernel<T, W><<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(params, working, grads, m, v,
                                                                            decay_mask, n / W, step);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

size_t grad_norm_scratch_floats(int64_t n) { return (size_t)norm_blocks(n); }

void grad_sum_of_squares(float* sum_sq, const float* grads, int64_t n, float* scratch, cudaStream_t stream) {
  const int blocks = norm_blocks(n);
  dispatch_width<float>(vectorizable<kWidth>(n, grads), [&](auto width) {
    constexpr int W = decltype(width)::value;
    sum_of_squares_kernel<W><<<blocks, kThreads, 0, stream>>>(scratch, grads, n / W);
  });
  DSK_CUDA_CHECK_LAUNCH();
  sum_floats(sum_sq, scratch, blocks, stream);
}

void scale_floats(float* values, float scale, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_width<float>(vectorizable<kWidth>(n, values), [&](auto width) {
    constexpr int W = decltype(width)::value;
    scale_kernel<W><<<blocks_for(n / W, kThreads), kThreads, 0, stream>>>(values, scale, n / W);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                                      \
  template void adamw_step<T>(float*, T*, const float*, float*, float*, const uint8_t*, int64_t, const AdamWStep&, \
                              cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
