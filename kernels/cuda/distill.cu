// Knowledge distillation on one chunk of LM-head rows; kernels/cpu/distill.cpp is the spec and
// kernels/cpu/distill_buckets.hpp holds the per-bucket formulas both use. One block per row, fp32
// math, every reduction in a fixed order (so reruns give the same bits):
//   teacher_top_k: softmax statistics of z / tau; a 4-pass radix select (8 bits a pass) of the K-th
//     largest logit; the ids above it and the lowest ids equal to it, placed by a block scan over
//     contiguous ranges; each candidate's rank by counting; the rest mass over the unmarked ids.
//   distill: softmax statistics of z and z / tau; the teacher ids marked in a shared bitmask; the
//     student's rest mass over the unmarked ids; the K + 1 bucket terms; then d(logits), the rest
//     ids and the top-K ids in two disjoint passes.
#include <cmath>

#include "core/error.hpp"
#include "cpu/distill_buckets.hpp"
#include "cuda/distill.cuh"
#include "cuda/memory_bound.cuh"

namespace dsk::kernels::cuda {

namespace {

using kernels::cpu::bucket_log;
using kernels::cpu::bucket_term;
using kernels::cpu::BucketTerm;

constexpr int kThreads = 512;

// max and sum of exp(x * scale - max) over a row, reduced over the block (online per thread).
struct RowSoftmax {
  float max, sum;
  __device__ float log_sum() const { return logf(sum) + max; }
};
template <typename T>
__device__ RowSoftmax row_softmax(const T* z, int V, float scale) {
  float thread_max = -INFINITY, sum = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float x = to_float(z[i]) * scale;
    if (x > thread_max) {
      sum *= expf(thread_max - x);
      thread_max = x;
    }
    sum += expf(x - thread_max);
  }
  const float row_max = block_reduce(thread_max, Max{}, -INFINITY);
  sum = thread_max == -INFINITY ? 0.0f : sum * expf(thread_max - row_max);
  return {row_max, block_reduce(sum, Sum{}, 0.0f)};
}

// A float's bits as an unsigned key with the same order.
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t bits = __float_as_uint(x);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

__device__ __forceinline__ bool marked(const uint32_t* mask, int i) { return (mask[i >> 5] >> (i & 31)) & 1u; }

// Shared memory of a block: the bitmask of V ids, then the kernel's own arrays.
__device__ __forceinline__ uint32_t* clear_mask(int V) {
  extern __shared__ uint32_t shared_words[];
  for (int w = threadIdx.x; w < (V + 31) / 32; w += blockDim.x) shared_words[w] = 0u;
  __syncthreads();
  return shared_words;
}
size_t mask_bytes(int V) { return size_t((V + 31) / 32) * 4; }

// Past 48 KiB of dynamic shared memory (vocabularies above about 300k) a kernel must opt in.
template <typename Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  if (bytes > (size_t(48) << 10))
    DSK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// The key of the K-th largest logit of the row (radix select, most significant byte first), and
// how many of the K are equal to it (the rest are above it).
template <typename T>
__device__ void kth_largest_key(const T* z, int V, int K, uint32_t* histogram, uint32_t& key, int& equal_needed) {
  __shared__ uint32_t prefix_shared;
  __shared__ int remaining_shared;
  uint32_t prefix = 0, prefix_mask = 0;
  int remaining = K;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    // Logits crowd into a few bins (the top bytes of similar floats): each warp adds its lanes of
    // one bin with a single atomic, so a hot bin sees a few atomics per step, not one per lane.
    // Every lane runs every step (the bound is the block's), as __match_any_sync needs.
    for (int base = 0; base < V; base += blockDim.x) {
      const int i = base + int(threadIdx.x);
      const uint32_t k = i < V ? order_key(to_float(z[i])) : 0u;
      const bool counted = i < V && (k & prefix_mask) == prefix;
      const uint32_t bin = counted ? (k >> shift) & 255u : 256u;
      const uint32_t peers = __match_any_sync(0xffffffffu, bin);
      if (counted && (__ffs(peers) - 1) == int(threadIdx.x % 32)) atomicAdd(&histogram[bin], uint32_t(__popc(peers)));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int above = 0, digit = 0;
      for (digit = 255; digit > 0; digit--) {
        if (above + int(histogram[digit]) >= remaining) break;
        above += int(histogram[digit]);
      }
      prefix_shared = prefix | (uint32_t(digit) << shift);
      remaining_shared = remaining - above;
    }
    __syncthreads();
    prefix = prefix_shared;
    remaining = remaining_shared;
    prefix_mask |= 255u << shift;
    __syncthreads();
  }
  key = prefix;
  equal_needed = remaining;
}

template <typename T>
__global__ void teacher_top_k_kernel(int32_t* ids, float* logprobs, float* rest, const T* logits, int V, int K,
                                     float temperature) {
  const int row = blockIdx.x;
  const T* z = logits + int64_t(row) * V;
  uint32_t* mask = clear_mask(V);
  uint32_t* histogram = mask + (V + 31) / 32;
  int* above_offsets = reinterpret_cast<int*>(histogram + 256);  // [blockDim]
  int* equal_offsets = above_offsets + blockDim.x;                // [blockDim]
  float* candidate_values = reinterpret_cast<float*>(equal_offsets + blockDim.x);  // [K]
  int* candidate_ids = reinterpret_cast<int*>(candidate_values + K);               // [K]

  const RowSoftmax soft = row_softmax(z, V, 1.0f / temperature);
  uint32_t threshold;
  int equal_needed;
  kth_largest_key(z, V, K, histogram, threshold, equal_needed);

  // Contiguous ranges per thread, so that the equal ones are taken lowest id first.
  const int span = (V + blockDim.x - 1) / blockDim.x;
  const int begin = min(V, int(threadIdx.x) * span), end = min(V, begin + span);
  int above = 0, equal = 0;
  for (int i = begin; i < end; i++) {
    const uint32_t k = order_key(to_float(z[i]));
    above += k > threshold;
    equal += k == threshold;
  }
  above_offsets[threadIdx.x] = above;
  equal_offsets[threadIdx.x] = equal;
  __syncthreads();
  if (threadIdx.x == 0) {  // exclusive scans, in order
    int a = 0, e = 0;
    for (int t = 0; t < int(blockDim.x); t++) {
      const int next_a = a + above_offsets[t], next_e = e + equal_offsets[t];
      above_offsets[t] = a;
      equal_offsets[t] = e;
      a = next_a;
      e = next_e;
    }
  }
  __syncthreads();
  const int above_total = K - equal_needed;
  int a = above_offsets[threadIdx.x], e = equal_offsets[threadIdx.x];
  for (int i = begin; i < end; i++) {
    const float x = to_float(z[i]);
    const uint32_t k = order_key(x);
    int slot = -1;
    if (k > threshold) slot = a++;
    else if (k == threshold && e < equal_needed) slot = above_total + e++;
    if (slot >= 0) {
      candidate_values[slot] = x;
      candidate_ids[slot] = i;
    }
  }
  __syncthreads();
  const float log_sum = soft.log_sum();
  for (int j = threadIdx.x; j < K; j += blockDim.x) {
    const float x = candidate_values[j];
    const int id = candidate_ids[j];
    int rank = 0;
    for (int o = 0; o < K; o++) {
      const float y = candidate_values[o];
      rank += y > x || (y == x && candidate_ids[o] < id);
    }
    ids[int64_t(row) * K + rank] = id;
    logprobs[int64_t(row) * K + rank] = x / temperature - log_sum;
    atomicOr(&mask[id >> 5], 1u << (id & 31));
  }
  __syncthreads();
  float rest_sum = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x)
    if (!marked(mask, i)) rest_sum += expf(to_float(z[i]) / temperature - soft.max);
  rest_sum = block_reduce(rest_sum, Sum{}, 0.0f);
  if (threadIdx.x == 0) rest[row] = rest_sum / soft.sum;
}

template <typename T>
__global__ void distill_kernel(float* divergences, float* cross_entropies, T* logits, const int32_t* targets,
                               const int32_t* teacher_ids, const float* teacher_logprobs, const float* teacher_rest,
                               int V, int K, int ignore_index, DistillLoss loss, float dscale) {
  const int row = blockIdx.x;
  T* z = logits + int64_t(row) * V;
  const int32_t* ids = teacher_ids + int64_t(row) * K;
  const float* teacher = teacher_logprobs + int64_t(row) * K;
  const int target = targets[row];
  if (target == ignore_index) {
    if (threadIdx.x == 0) divergences[row] = cross_entropies[row] = 0.0f;
    if (dscale != 0.0f)
      for (int i = threadIdx.x; i < V; i += blockDim.x) z[i] = from_float<T>(0.0f);
    return;
  }
  const bool valid_target = target >= 0 && target < V;
  const float target_logit = threadIdx.x == 0 && valid_target ? to_float(z[target]) : 0.0f;
  const float inverse_tau = 1.0f / loss.temperature;
  const RowSoftmax plain = row_softmax(z, V, 1.0f), soft = row_softmax(z, V, inverse_tau);
  uint32_t* mask = clear_mask(V);
  int invalid = 0;
  for (int j = threadIdx.x; j < K; j += blockDim.x) {
    if (ids[j] < 0 || ids[j] >= V) invalid = 1;
    else atomicOr(&mask[ids[j] >> 5], 1u << (ids[j] & 31));
  }
  invalid = block_reduce(invalid, Max{}, 0);  // also the barrier after the marks
  if (invalid) {
    if (threadIdx.x == 0) {
      divergences[row] = NAN;
      cross_entropies[row] = valid_target ? plain.log_sum() - target_logit : NAN;
    }
    return;
  }
  float rest_sum = 0.0f;
  int rest_count = 0;
  for (int i = threadIdx.x; i < V; i += blockDim.x)
    if (!marked(mask, i)) {
      rest_sum += expf(to_float(z[i]) * inverse_tau - soft.max);
      rest_count++;
    }
  rest_sum = block_reduce(rest_sum, Sum{}, 0.0f);
  rest_count = block_reduce(rest_count, Sum{}, 0);

  const float log_S = logf(soft.sum);
  auto top_term = [&](int j) {
    const float log_Q = to_float(z[ids[j]]) * inverse_tau - soft.max - log_S;
    return bucket_term<float>(loss.divergence, loss.beta, expf(teacher[j]), teacher[j], expf(log_Q), log_Q);
  };
  float divergence = 0.0f, w_total = 0.0f;
  for (int j = threadIdx.x; j < K; j += blockDim.x) {
    const BucketTerm<float> term = top_term(j);
    divergence += term.divergence;
    w_total += term.w;
  }
  divergence = block_reduce(divergence, Sum{}, 0.0f);
  w_total = block_reduce(w_total, Sum{}, 0.0f);
  float w_rest = 0.0f;
  if (rest_count > 0) {
    const float P = teacher_rest[row], Q = rest_sum / soft.sum;
    const BucketTerm<float> term = bucket_term<float>(loss.divergence, loss.beta, P, bucket_log(P), Q, bucket_log(Q));
    divergence += term.divergence;
    w_rest = term.w;
    w_total += term.w;
  }
  if (threadIdx.x == 0) {
    divergences[row] = divergence;
    cross_entropies[row] = valid_target ? plain.log_sum() - target_logit : NAN;
  }
  if (dscale == 0.0f) return;
  const float kd_scale = loss.alpha * inverse_tau, ce_scale = 1.0f - loss.alpha;
  auto gradient = [&](int i, float own) {
    const float x = to_float(z[i]);
    const float q = expf(x * inverse_tau - soft.max) / soft.sum;
    const float p = expf(x - plain.max) / plain.sum;
    return from_float<T>(dscale * (ce_scale * (p - (i == target ? 1.0f : 0.0f)) + kd_scale * (own - q * w_total)));
  };
  // The rest ids and the teacher's ids are disjoint, so the two passes never touch the same logit.
  for (int i = threadIdx.x; i < V; i += blockDim.x)
    if (!marked(mask, i)) {
      const float e = expf(to_float(z[i]) * inverse_tau - soft.max);
      z[i] = gradient(i, rest_sum > 0.0f ? e / rest_sum * w_rest : 0.0f);
    }
  for (int j = threadIdx.x; j < K; j += blockDim.x) z[ids[j]] = gradient(ids[j], top_term(j).w);
}

}  // namespace

template <typename T>
void teacher_top_k_chunk(int32_t* ids, float* logprobs, float* rest, const T* logits, int rows, int V, int K,
                         float temperature, cudaStream_t stream) {
  if (rows == 0) return;
  if (K < 1 || K > V || K > kMaxDistillTopK)
    throw dsk::InternalError(str("teacher_top_k_chunk: K = ", K, " outside [1, min(V = ", V, ", ", kMaxDistillTopK, ")]"));
  const size_t shared = mask_bytes(V) + 256 * 4 + size_t(2) * kThreads * 4 + size_t(K) * 8;
  allow_shared_memory(teacher_top_k_kernel<T>, shared);
  teacher_top_k_kernel<T><<<rows, kThreads, shared, stream>>>(ids, logprobs, rest, logits, V, K, temperature);
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void distill_chunk(float* divergences, float* cross_entropies, T* logits, const int32_t* targets,
                   const int32_t* teacher_ids, const float* teacher_logprobs, const float* teacher_rest, int rows,
                   int V, int K, int ignore_index, const DistillLoss& loss, float dscale, cudaStream_t stream) {
  if (rows == 0) return;
  allow_shared_memory(distill_kernel<T>, mask_bytes(V));
  distill_kernel<T><<<rows, kThreads, mask_bytes(V), stream>>>(divergences, cross_entropies, logits, targets,
                                                                teacher_ids, teacher_logprobs, teacher_rest, V, K,
                                                                ignore_index, loss, dscale);
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE(T)                                                                                         \
  template void teacher_top_k_chunk<T>(int32_t*, float*, float*, const T*, int, int, int, float, cudaStream_t);  \
  template void distill_chunk<T>(float*, float*, T*, const int32_t*, const int32_t*, const float*, const float*, \
                                 int, int, int, int, const DistillLoss&, float, cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
