// int8 gradient compression (grad_quantize.cuh). quantize: one block per chunk, a block-wide max
// of |v| (order-free, so deterministic), then each thread quantizes its strided values.
// dequantize_sum: one thread per value, the ranks summed in order.
#include "cuda/grad_quantize.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float value_at(const float* values, const float* residual, int64_t i) {
  return residual ? __fadd_rn(values[i], residual[i]) : values[i];
}

__global__ void quantize_int8_kernel(int8_t* q, float* scales, const float* values, float* residual, int64_t n,
                                     int chunk) {
  const int64_t begin = int64_t(blockIdx.x) * chunk;
  const int count = int(min(int64_t(chunk), n - begin));
  // A non-finite value counts as +inf: the chunk's max is then not finite.
  float absmax = 0.0f;
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const float v = value_at(values, residual, begin + i);
    const float magnitude = isfinite(v) ? fabsf(v) : INFINITY;
    absmax = magnitude > absmax ? magnitude : absmax;
  }
  absmax = block_reduce(absmax, Max{}, 0.0f);
  const float scale = isfinite(absmax) ? __fdiv_rn(absmax, 127.0f) : NAN;
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const float v = value_at(values, residual, begin + i);
    float level = 0.0f;
    if (scale > 0.0f) level = fminf(fmaxf(rintf(__fdiv_rn(v, scale)), -127.0f), 127.0f);
    q[begin + i] = int8_t(level);
    if (residual) residual[begin + i] = isfinite(scale) ? __fsub_rn(v, __fmul_rn(level, scale)) : 0.0f;
  }
}

__global__ void dequantize_sum_int8_kernel(float* out, const int8_t* q, const float* scales, int64_t n, int ranks,
                                           int chunk, int64_t chunks) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float sum = 0.0f;
  for (int r = 0; r < ranks; r++)
    sum = __fadd_rn(sum, __fmul_rn(float(q[int64_t(r) * n + i]), scales[int64_t(r) * chunks + i / chunk]));
  out[i] = sum;
}

}  // namespace

void quantize_int8(int8_t* q, float* scales, const float* values, float* residual, int64_t n, int chunk,
                   cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t chunks = (n + chunk - 1) / chunk;
  quantize_int8_kernel<<<unsigned(chunks), kThreads, 0, stream>>>(q, scales, values, residual, n, chunk);
  DSK_CUDA_CHECK_LAUNCH();
}

void dequantize_sum_int8(float* out, const int8_t* q, const float* scales, int64_t n, int ranks, int chunk,
                         cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t chunks = (n + chunk - 1) / chunk;
  dequantize_sum_int8_kernel<<<unsigned((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(out, q, scales, n,
                                                                                              ranks, chunk, chunks);
  DSK_CUDA_CHECK_LAUNCH();
}

}  // namespace dsk::kernels::cuda
