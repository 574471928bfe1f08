// RMSNorm on the GPU; kernels/cpu/rmsnorm.cpp is the spec (same formulas, same operation order).
// Forward: one warp per row [C], fp32 math, the row read W elements at a time (16 bytes when C and
// the pointers allow), kForwardBatch of a lane's vectors requested before the first is summed (a
// row of 2048 bf16 is 8 vectors a lane: one memory round trip, not 8 dependent ones, which is
// what a decode step's single row waits on); a row that fits in one batch keeps x and weight in
// registers for the second pass. The lane's sum runs over its vectors in column order either way,
// then the warp's butterfly: the same bits for any N. The backward's dweight is summed without
// atomics: each block handles a fixed run of rows and writes its partial dweight [C] to scratch,
// then one small kernel adds the partials in block order. The grid depends on N and C only, so
// the bits do not depend on the GPU.
#include <algorithm>

#include "core/error.hpp"
#include "cuda/elementwise.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kForwardWarps = 8;             // rows per forward block
constexpr int kBackwardRowsPerBlock = 32;    // rows whose dweight one partial [C] sums
constexpr int kBackwardMaxWarps = 8;
constexpr size_t kSharedBudget = 48 * 1024;  // per-warp dweight partials [warps, C] fit in this

constexpr int kForwardBatch = 8;  // vectors a lane has in flight

template <typename T, int W>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* inp, const T* weight, int N, int C, float eps) {
  let_dependents_start();  // the product that follows fetches its weights meanwhile
  const int row = blockIdx.x * kForwardWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;  // the whole warp leaves together
  constexpr int kStep = 32 * W;  // columns a warp covers with one vector a lane
  const bool one_batch = C <= kStep * kForwardBatch;
  const T* x = inp + (int64_t)row * C;
  Packed<T, W> xv[kForwardBatch], wv[kForwardBatch];
  float sum = 0;
  for (int c0 = lane * W; c0 < C; c0 += kStep * kForwardBatch) {
#pragma unroll
    for (int b = 0; b < kForwardBatch; b++) {
      const int c = c0 + b * kStep < C ? c0 + b * kStep : c0;  // past the row: a harmless repeat
      xv[b].load(x + c);
      if (one_batch) wv[b].load(weight + c);  // needed after the reduction: ask now
    }
#pragma unroll
    for (int b = 0; b < kForwardBatch; b++)
      if (c0 + b * kStep < C) {
#pragma unroll
        for (int i = 0; i < W; i++) sum += xv[b][i] * xv[b][i];
      }
  }
  sum = warp_reduce(sum, Sum{});
  const float r = 1.0f / sqrtf(sum / C + eps);
  T* y = out + (int64_t)row * C;
  for (int c0 = lane * W; c0 < C; c0 += kStep * kForwardBatch) {
    if (!one_batch) {
#pragma unroll
      for (int b = 0; b < kForwardBatch; b++) {
        const int c = c0 + b * kStep;
        if (c < C) {
          xv[b].load(x + c);
          wv[b].load(weight + c);
        }
      }
    }
#pragma unroll
    for (int b = 0; b < kForwardBatch; b++) {
      const int c = c0 + b * kStep;
      if (c >= C) continue;
      Vec<T, W> yv;
#pragma unroll
      for (int i = 0; i < W; i++) yv[i] = from_float<T>(wv[b][i] * (xv[b][i] * r));
      store_vec(y + c, yv);
    }
  }
  if (lane == 0) rstd[row] = r;
}

// Block b handles rows [b * kBackwardRowsPerBlock, +kBackwardRowsPerBlock), warp w every warps-th
// of them. With xhat = x r and g = dout weight: dx += r (g - xhat mean(g xhat)); each warp sums
// its rows' dout xhat into its own shared row, then the block adds the warps' rows in order into
// dweight_partials[b] [C] (skipped when dweight_partials is null: no weight gradient wanted).
// The shared rows are padded to a multiple of 32 W and stored lane-minor (shared_column), so the
// 32 lanes of a warp touch 32 consecutive floats: no bank conflicts.
template <int W>
__device__ __forceinline__ int shared_column(int c) {
  const int chunk = c / (32 * W) * (32 * W), within = c % (32 * W);
  return chunk + within % W * 32 + within / W;
}

template <typename T, int W>
__global__ void rmsnorm_backward_kernel(T* dinp, float* dweight_partials, const T* dout, const T* inp,
                                        const T* weight, const float* rstd, int N, int C, int padded_C) {
  extern __shared__ float warp_dweight[];  // [warps, padded_C]
  const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* my_dweight = warp_dweight + (int64_t)warp * padded_C;
  if (dweight_partials)
    for (int c = lane; c < padded_C; c += 32) my_dweight[c] = 0;  // each warp its own row

  const int first = blockIdx.x * kBackwardRowsPerBlock;
  const int last = min(N, first + kBackwardRowsPerBlock);
  for (int row = first + warp; row < last; row += warps) {
    const T* x = inp + (int64_t)row * C;
    const T* dy = dout + (int64_t)row * C;
    T* dx = dinp + (int64_t)row * C;
    const float r = rstd[row];
    float dot = 0;
    for (int c = lane * W; c < C; c += 32 * W) {
      const Vec<T, W> xv = load_vec<W>(x + c), dyv = load_vec<W>(dy + c), wv = load_vec<W>(weight + c);
#pragma unroll
      for (int i = 0; i < W; i++) dot += to_float(dyv[i]) * to_float(wv[i]) * to_float(xv[i]) * r;
    }
    dot = warp_reduce(dot, Sum{}) / C;
    for (int c = lane * W; c < C; c += 32 * W) {
      const Vec<T, W> xv = load_vec<W>(x + c), dyv = load_vec<W>(dy + c), wv = load_vec<W>(weight + c);
      Vec<T, W> dxv = load_vec<W>(dx + c);
      float* partial = my_dweight + shared_column<W>(c);  // + 32 i for element i
#pragma unroll
      for (int i = 0; i < W; i++) {
        const float xf = to_float(xv[i]), dyf = to_float(dyv[i]);
        dxv[i] = from_float<T>(to_float(dxv[i]) + r * (dyf * to_float(wv[i]) - xf * r * dot));
        if (dweight_partials) partial[32 * i] += dyf * xf * r;
      }
      store_vec(dx + c, dxv);
    }
  }
  if (!dweight_partials) return;
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float sum = 0;
    for (int w = 0; w < warps; w++) sum += warp_dweight[(int64_t)w * padded_C + shared_column<W>(c)];
    dweight_partials[(int64_t)blockIdx.x * C + c] = sum;
  }
}

// dweight[c] += sum over b < blocks of partials[b, c]. Block (32, kGroups): x picks the column,
// y sums the partials b = y, y + kGroups, ... in order, then y = 0 adds the groups in order.
constexpr int kGroups = 16;
__global__ void add_partials_kernel(float* dweight, const float* partials, int blocks, int C) {
  __shared__ float group_sums[kGroups][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float sum = 0;
  if (c < C)
    for (int b = threadIdx.y; b < blocks; b += kGroups) sum += partials[(int64_t)b * C + c];
  group_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  float total = 0;
  for (int g = 0; g < kGroups; g++) total += group_sums[g][threadIdx.x];
  dweight[c] += total;
}

int backward_blocks(int N) { return (N + kBackwardRowsPerBlock - 1) / kBackwardRowsPerBlock; }

// As many warps as keep the per-warp dweight rows within kSharedBudget (at least one).
int backward_warps(size_t row_bytes) {
  return (int)std::max<size_t>(1, std::min<size_t>(kBackwardMaxWarps, kSharedBudget / row_bytes));
}

}  // namespace

template <typename T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* weight, int N, int C, float eps,
                     cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  dispatch_width<T>(vectorizable<vec_width<T>>(C, out, inp, weight), [&](auto width) {
    constexpr int W = decltype(width)::value;
    rmsnorm_forward_kernel<T, W>
        <<<blocks_for(N, kForwardWarps), kForwardWarps * 32, 0, stream>>>(out, rstd, inp, weight, N, C, eps);
  });
  DSK_CUDA_CHECK_LAUNCH();
}

size_t rmsnorm_backward_scratch_floats(int N, int C) { return (size_t)backward_blocks(N) * C; }

template <typename T>
void rmsnorm_backward(T* dinp, float* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                      int N, int C, float* scratch, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  const int blocks = backward_blocks(N);
  float* partials = dweight ? scratch : nullptr;
  dispatch_width<T>(vectorizable<vec_width<T>>(C, dinp, dout, inp, weight), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const int padded_C = (C + 32 * W - 1) / (32 * W) * (32 * W);
    const int warps = dweight ? backward_warps(sizeof(float) * padded_C) : kBackwardMaxWarps;
    const size_t shared = dweight ? sizeof(float) * warps * padded_C : 0;
    auto kernel = rmsnorm_backward_kernel<T, W>;
    if (shared > kSharedBudget)  // one warp's row alone is over 48 KB: C > 12288
      DSK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared));
    kernel<<<blocks, warps * 32, shared, stream>>>(dinp, partials, dout, inp, weight, rstd, N, C, padded_C);
  });
  DSK_CUDA_CHECK_LAUNCH();
  if (!dweight) return;
  add_partials_kernel<<<blocks_for(C, 32), dim3(32, kGroups), 0, stream>>>(dweight, partials, blocks, C);
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                                   \
  template void rmsnorm_forward<T>(T*, float*, const T*, const T*, int, int, float, cudaStream_t);           \
  template void rmsnorm_backward<T>(T*, float*, const T*, const T*, const T*, const float*, int, int, float*, \
                                    cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
