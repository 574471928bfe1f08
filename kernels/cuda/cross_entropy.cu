// Softmax cross-entropy of one chunk of LM-head rows, in place; kernels/cpu/cross_entropy.cpp is
// the spec (there averaged over the counted rows; here per-row losses, and dscale = 1 / count
// makes the gradient the same). One block per row [V], fp32 math, two passes over the row:
//   1. each thread keeps an online (max, sum of exp(z - max)) over its W-wide packs; the block
//      merges them (max first, then the rescaled sums), both in a fixed order;
//   2. the row is overwritten with dscale * (softmax - onehot(target)).
// A target outside [0, V) that is not ignore_index gives a NaN loss (the trainer's NaN guard stops
// on it) instead of a read out of bounds.
#include <cmath>

#include "cuda/cross_entropy.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kSumThreads = 1024;

template <typename T, int W>
__global__ void cross_entropy_kernel(float* losses, T* logits, const int32_t* targets, int V, int ignore_index,
                                     float dscale) {
  const int row = blockIdx.x;
  T* z = logits + (int64_t)row * V;
  const int target = targets[row];
  if (target == ignore_index) {
    if (threadIdx.x == 0) losses[row] = 0.0f;
    if (dscale == 0.0f) return;
    Vec<T, W> zero;
#pragma unroll
    for (int i = 0; i < W; i++) zero[i] = from_float<T>(0.0f);
    for (int j = threadIdx.x * W; j < V; j += blockDim.x * W) store_vec(z + j, zero);
    return;
  }
  const bool valid_target = target >= 0 && target < V;
  // Read before any thread overwrites the row (the reductions below are barriers).
  const float target_logit = threadIdx.x == 0 && valid_target ? to_float(z[target]) : 0.0f;

  float thread_max = -INFINITY, sum = 0.0f;  // sum of exp(z - thread_max) over this thread's values
  for (int j = threadIdx.x * W; j < V; j += blockDim.x * W) {
    const Vec<T, W> zv = load_vec<W>(z + j);
    float pack_max = to_float(zv[0]);
#pragma unroll
    for (int i = 1; i < W; i++) pack_max = fmaxf(pack_max, to_float(zv[i]));
    if (pack_max > thread_max) {  // rescale the sum so far to the new max
      sum *= expf(thread_max - pack_max);
      thread_max = pack_max;
    }
#pragma unroll
    for (int i = 0; i < W; i++) sum += expf(to_float(zv[i]) - thread_max);
  }
  const float row_max = block_reduce(thread_max, Max{}, -INFINITY);
  sum = thread_max == -INFINITY ? 0.0f : sum * expf(thread_max - row_max);  // a thread with no values adds 0
  const float row_sum = block_reduce(sum, Sum{}, 0.0f);
  if (threadIdx.x == 0) losses[row] = valid_target ? logf(row_sum) + row_max - target_logit : NAN;
  if (dscale == 0.0f) return;

  const float inverse = 1.0f / row_sum;
  for (int j = threadIdx.x * W; j < V; j += blockDim.x * W) {
    Vec<T, W> zv = load_vec<W>(z + j);
#pragma unroll
    for (int i = 0; i < W; i++) {
      const float p = expf(to_float(zv[i]) - row_max) * inverse;
      zv[i] = from_float<T>(dscale * (p - (j + i == target ? 1.0f : 0.0f)));
    }
    store_vec(z + j, zv);
  }
}

// total[0] = values[0] + ... + values[n - 1]: thread t sums t, t + blockDim, ... in order (in
// double), then the fixed block reduction.
__global__ void sum_kernel(float* total, const float* values, int64_t n) {
  double sum = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += values[i];
  sum = block_reduce(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) total[0] = (float)sum;
}

}  // namespace

template <typename T>
void cross_entropy_chunk(float* losses, T* logits, const int32_t* targets, int rows, int V, int ignore_index,
                         float dscale, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(V, logits), [&](auto width) {
    constexpr int W = decltype(width)::value;
    cross_entropy_kernel<T, W><<<rows, kThreads, 0, stream>>>(losses, logits, targets, V, ignore_index, dscale);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

void sum_floats(float* total, const float* values, int64_t n, cudaStream_t stream) {
  sum_kernel<<<1, kSumThreads, 0, stream>>>(total, values, n);
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T) \
  template void cross_entropy_chunk<T>(float*, T*, const int32_t*, int, int, int, float, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
