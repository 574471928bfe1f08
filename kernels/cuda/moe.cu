// DeepSeekMoE on the GPU (moe.cuh): the router, the permutation of (token, slot) pairs by expert,
// gather and combine with their backward passes, and the balancing statistics (expert load, bias
// update, sequence-wise aux loss). The experts' projections are grouped_matmul.cu.
//
// Pair p = n * K + k is slot k of token n. Everything is deterministic: counts are integer, every
// float sum runs in a fixed order (slot order, or a fixed shuffle tree).
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "core/error.hpp"
#include "cuda/moe.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr unsigned kFullMask = 0xffffffffu;

// Limits of the router kernel: a lane keeps E / 32 experts, a lane per group, K chosen in smem.
constexpr int kRouterMaxExperts = 256;
constexpr int kRouterMaxTopK = 16;
constexpr int kRouterMaxGroups = 32;
constexpr int kRouterWarps = 4;
constexpr int kExpertsPerLane = kRouterMaxExperts / 32;

// Pairs per block of the permutation's counting sort, and its block size.
constexpr int kPermuteThreads = 256;
constexpr int kPermuteWarps = kPermuteThreads / 32;
constexpr int kPermuteChunk = 8 * kPermuteThreads;
constexpr int kPermuteMaxExperts = 1024;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

// Warp-wide arg-max over (value, index) candidates; index < 0 means "no candidate". The larger
// value wins and equal values go to the lower index (the CPU's tie rule); a NaN never wins against
// a number but still yields a valid index when nothing else is left. Every lane gets the result.
__device__ __forceinline__ void warp_argmax(float& value, int& index) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_xor_sync(kFullMask, value, offset);
    const int other_index = __shfl_xor_sync(kFullMask, index, offset);
    const bool better = other_index >= 0 &&
                        (index < 0 || other_value > value || (other_value == value && other_index < index));
    if (better) {
      value = other_value;
      index = other_index;
    }
  }
}

// ---- router: one warp per token

// The topk_group groups with the highest sum of their two best biased scores, as a bit mask.
__device__ unsigned select_groups(const float* choice, int per_group, int n_group, int topk_group, int lane) {
  if (topk_group >= n_group) return (n_group >= 32) ? kFullMask : (1u << n_group) - 1;
  float group_score = 0.0f;
  if (lane < n_group) {
    float best = -INFINITY, second = -INFINITY;
    for (int e = lane * per_group; e < (lane + 1) * per_group; e++) {
      const float v = choice[e];
      if (v > best) {
        second = best;
        best = v;
      } else if (v > second) {
        second = v;
      }
    }
    group_score = best + (per_group > 1 ? second : 0.0f);
  }
  unsigned selected = 0;
  for (int round = 0; round < topk_group; round++) {
    const bool candidate = lane < n_group && !((selected >> lane) & 1u);
    float value = group_score;
    int index = candidate ? lane : -1;
    warp_argmax(value, index);
    selected |= 1u << index;
  }
  return selected;
}

// scores [N,E] = sigmoid(logits); the top-K of (scores + bias) within the selected groups (other
// groups count as 0, as HF masks them); weights = the unbiased scores of the chosen, renormalised
// when asked, times routed_scaling_factor.
template <typename T>
__global__ void __launch_bounds__(kRouterWarps * 32)
    route_forward_kernel(float* scores, int32_t* experts, float* weights, const T* logits, const float* bias,
                         RouterConfig r, int N) {
  __shared__ float score_smem[kRouterWarps][kRouterMaxExperts];
  __shared__ float choice_smem[kRouterWarps][kRouterMaxExperts];
  __shared__ int chosen_smem[kRouterWarps][kRouterMaxTopK];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n = blockIdx.x * kRouterWarps + warp;
  if (n >= N) return;  // whole warps leave together: no block-wide barrier below
  const int E = r.n_experts, K = r.top_k;
  float* score = score_smem[warp];
  float* choice = choice_smem[warp];
  for (int e = lane; e < E; e += 32) {
    const float s = sigmoid(to_float(logits[(int64_t)n * E + e]));
    score[e] = s;
    choice[e] = s + bias[e];
    scores[(int64_t)n * E + e] = s;
  }
  __syncwarp();
  const int per_group = E / r.n_group;
  const unsigned groups = select_groups(choice, per_group, r.n_group, r.topk_group, lane);

  float masked[kExpertsPerLane];  // expert lane + 32 j
  unsigned taken = 0;             // bit j: expert lane + 32 j already chosen
#pragma unroll
  for (int j = 0; j < kExpertsPerLane; j++) {
    const int e = lane + 32 * j;
    masked[j] = (e < E && ((groups >> (e / per_group)) & 1u)) ? choice[e] : 0.0f;
  }
  for (int k = 0; k < K; k++) {
    float value = 0.0f;
    int index = -1;
#pragma unroll
    for (int j = 0; j < kExpertsPerLane; j++) {  // ascending index: a strict > keeps the lower on ties
      const int e = lane + 32 * j;
      if (e < E && !((taken >> j) & 1u) && (index < 0 || masked[j] > value)) {
        value = masked[j];
        index = e;
      }
    }
    warp_argmax(value, index);
    if (index % 32 == lane) taken |= 1u << (index / 32);
    if (lane == 0) chosen_smem[warp][k] = index;
  }
  __syncwarp();
  if (lane == 0) {
    const int* chosen = chosen_smem[warp];
    float sum = 0.0f;
    for (int k = 0; k < K; k++) sum += score[chosen[k]];
    const float scale = (r.norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f) * r.routed_scaling_factor;
    for (int k = 0; k < K; k++) {
      experts[(int64_t)n * K + k] = chosen[k];
      weights[(int64_t)n * K + k] = score[chosen[k]] * scale;
    }
  }
}

// w_i = f s_i / D with D = sum_j s_j (or 1): ds_i = f (dw_i - sum_j dw_j s_j / D) / D;
// dlogit_i += ds_i s_i (1 - s_i). One thread per token; the K experts of a token are distinct.
template <typename T>
__global__ void route_backward_kernel(T* dlogits, const float* dweights, const float* scores, const int32_t* experts,
                                      RouterConfig r, int N) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int E = r.n_experts, K = r.top_k;
  const float* s = scores + (int64_t)n * E;
  const int32_t* chosen = experts + (int64_t)n * K;
  const float* dw = dweights + (int64_t)n * K;
  float denom = 1.0f, weighted = 0.0f;
  if (r.norm_topk_prob) {
    float sum = 0.0f;
    for (int i = 0; i < K; i++) sum += s[chosen[i]];
    denom = sum + 1e-20f;
    for (int i = 0; i < K; i++) weighted += dw[i] * s[chosen[i]];
    weighted /= denom;
  }
  for (int i = 0; i < K; i++) {
    const float si = s[chosen[i]];
    const float ds = r.routed_scaling_factor * (dw[i] - weighted) / denom;
    T& d = dlogits[(int64_t)n * E + chosen[i]];
    d = from_float<T>(to_float(d) + ds * si * (1.0f - si));
  }
}

void check_router(const RouterConfig& r) {
  const bool ok = r.n_experts >= 1 && r.n_experts <= kRouterMaxExperts && r.top_k >= 1 &&
                  r.top_k <= kRouterMaxTopK && r.top_k <= r.n_experts && r.n_group >= 1 &&
                  r.n_group <= kRouterMaxGroups && r.n_experts % r.n_group == 0 && r.topk_group >= 1 &&
                  r.topk_group <= r.n_group;
  if (!ok)
    throw UsageError(str("the CUDA router supports up to ", kRouterMaxExperts, " experts, top_k up to ",
                         kRouterMaxTopK, " and up to ", kRouterMaxGroups,
                         " groups dividing the experts, topk_group <= n_group; got n_routed_experts ", r.n_experts,
                         ", num_experts_per_tok ", r.top_k, ", n_group ", r.n_group, ", topk_group ", r.topk_group));
}

// ---- permutation: a stable counting sort of the pairs by expert, in three passes over chunks of
// kPermuteChunk pairs: count per chunk, scan (offsets, and each chunk's first row per expert),
// place (stable within a chunk: warps in order, lanes in order).

int permute_chunks(int pairs) { return (pairs + kPermuteChunk - 1) / kPermuteChunk; }

// chunk_counts [chunks, E]: how many pairs of each chunk go to each expert.
__global__ void __launch_bounds__(kPermuteThreads)
    count_chunk_experts(int32_t* chunk_counts, const int32_t* experts, int pairs, int E) {
  extern __shared__ int32_t counts[];  // [E]
  for (int e = threadIdx.x; e < E; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  const int begin = blockIdx.x * kPermuteChunk, end = min(begin + kPermuteChunk, pairs);
  for (int p = begin + threadIdx.x; p < end; p += blockDim.x) atomicAdd(&counts[experts[p]], 1);
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) chunk_counts[(int64_t)blockIdx.x * E + e] = counts[e];
}

// One block. chunk_rows [chunks, E]: the counts in, the permuted row of each chunk's first pair of
// expert e out. offsets [E+1] = exclusive scan of the totals; load [E] += the totals.
__global__ void __launch_bounds__(kPermuteThreads)
    scan_expert_offsets(int32_t* offsets, int64_t* load, int32_t* chunk_rows, int chunks, int E) {
  __shared__ int32_t totals[kPermuteMaxExperts];
  __shared__ int32_t starts[kPermuteMaxExperts + 1];
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    int32_t running = 0;
    for (int c = 0; c < chunks; c++) {
      const int32_t count = chunk_rows[(int64_t)c * E + e];
      chunk_rows[(int64_t)c * E + e] = running;
      running += count;
    }
    totals[e] = running;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    int32_t before = 0;
    for (int first = 0; first < E; first += 32) {
      const int e = first + lane;
      int32_t inclusive = e < E ? totals[e] : 0;
      for (int d = 1; d < 32; d *= 2) {
        const int32_t up = __shfl_up_sync(kFullMask, inclusive, d);
        if (lane >= d) inclusive += up;
      }
      if (e < E) starts[e] = before + inclusive - totals[e];
      before += __shfl_sync(kFullMask, inclusive, 31);
    }
    if (lane == 0) starts[E] = before;
  }
  __syncthreads();
  for (int e = threadIdx.x; e <= E; e += blockDim.x) offsets[e] = starts[e];
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    load[e] += totals[e];
    for (int c = 0; c < chunks; c++) chunk_rows[(int64_t)c * E + e] += starts[e];
  }
}

// Each block places its chunk, kPermuteThreads pairs at a time: a pair's row is its expert's next
// free row, plus the pairs of the same expert in earlier warps, plus those in earlier lanes.
__global__ void __launch_bounds__(kPermuteThreads)
    place_pairs(int32_t* order, int32_t* row_of, const int32_t* experts, const int32_t* chunk_rows, int pairs, int E) {
  extern __shared__ int32_t shared[];
  int32_t* next_row = shared;             // [E]
  int32_t* warp_counts = shared + E;      // [kPermuteWarps, E]
  for (int e = threadIdx.x; e < E; e += blockDim.x) next_row[e] = chunk_rows[(int64_t)blockIdx.x * E + e];
  for (int i = threadIdx.x; i < kPermuteWarps * E; i += blockDim.x) warp_counts[i] = 0;
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int begin = blockIdx.x * kPermuteChunk, end = min(begin + kPermuteChunk, pairs);
  for (int first = begin; first < end; first += kPermuteThreads) {
    const int p = first + threadIdx.x;
    const int expert = p < end ? experts[p] : -1;
    const unsigned peers = __match_any_sync(kFullMask, expert);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    if (expert >= 0 && rank == 0) warp_counts[warp * E + expert] = __popc(peers);
    __syncthreads();
    if (expert >= 0) {
      int row = next_row[expert] + rank;
      for (int w = 0; w < warp; w++) row += warp_counts[w * E + expert];
      order[row] = p;
      row_of[p] = row;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
      int32_t placed = 0;
      for (int w = 0; w < kPermuteWarps; w++) {
        placed += warp_counts[w * E + e];
        warp_counts[w * E + e] = 0;
      }
      next_row[e] += placed;
    }
    __syncthreads();
  }
}

// ---- gather, combine and their backward passes: one warp per row, each lane kWidth adjacent
// channels at a time (16 bytes when the rows allow it: kWidth = 16 / sizeof(T); else 1)

template <typename T>
constexpr int kWideWidth = int(sizeof(uint4) / sizeof(T));

template <int kWidth, typename T>
__device__ __forceinline__ void load_floats(float (&v)[kWidth], const T* p) {
  if constexpr (kWidth == 1) {
    v[0] = to_float(*p);
  } else {
    static_assert(kWidth * sizeof(T) == sizeof(uint4), "one 16-byte access");
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const T* elements = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < kWidth; i++) v[i] = to_float(elements[i]);
  }
}

template <int kWidth, typename T>
__device__ __forceinline__ void store_floats(T* p, const float (&v)[kWidth]) {
  if constexpr (kWidth == 1) {
    *p = from_float<T>(v[0]);
  } else {
    uint4 raw;
    T* elements = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < kWidth; i++) elements[i] = from_float<T>(v[i]);
    *reinterpret_cast<uint4*>(p) = raw;
  }
}

// out [N,C] (T) += sum over slots k (in order) of weights[n,k] (1 when null) * rows[row_of[n*K+k]].
template <int kWidth, typename T>
__global__ void add_weighted_slots(T* out, const T* rows, const float* weights, const int32_t* row_of, int N, int K,
                                   int C) {
  const int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (n >= N) return;
  for (int c = (threadIdx.x % 32) * kWidth; c < C; c += 32 * kWidth) {
    float sum[kWidth] = {}, row[kWidth];
    for (int k = 0; k < K; k++) {
      const int64_t p = (int64_t)n * K + k;
      const float w = weights ? weights[p] : 1.0f;
      load_floats(row, rows + (int64_t)row_of[p] * C + c);
#pragma unroll
      for (int i = 0; i < kWidth; i++) sum[i] += w * row[i];
    }
    T* o = out + (int64_t)n * C + c;
    float total[kWidth];
    load_floats(total, o);
#pragma unroll
    for (int i = 0; i < kWidth; i++) total[i] += sum[i];
    store_floats(o, total);
  }
}

// xp[i] = x[order[i] / K], row by row in units of Unit (16 bytes when rows allow it).
template <typename Unit>
__global__ void gather_rows(Unit* xp, const Unit* x, const int32_t* order, int K, int units_per_row, int rows) {
  const int i = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (i >= rows) return;
  const Unit* source = x + (int64_t)(order[i] / K) * units_per_row;
  Unit* target = xp + (int64_t)i * units_per_row;
  for (int u = threadIdx.x % 32; u < units_per_row; u += 32) target[u] = source[u];
}

// One warp per pair p: dyp[row_of[p]] = weights[p] * dout[p / K]; dweights[p] = dot(dout[p / K], yp[row_of[p]]).
template <int kWidth, typename T>
__global__ void combine_backward_kernel(T* dyp, float* dweights, const T* dout, const T* yp, const float* weights,
                                        const int32_t* row_of, int pairs, int K, int C) {
  const int p = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (p >= pairs) return;
  const int lane = threadIdx.x % 32;
  const int64_t row = row_of[p];
  const T* g = dout + (int64_t)(p / K) * C;
  const float w = weights[p];
  float dot = 0.0f;
  for (int c = lane * kWidth; c < C; c += 32 * kWidth) {
    float gc[kWidth], y[kWidth], scaled[kWidth];
    load_floats(gc, g + c);
    load_floats(y, yp + row * C + c);
#pragma unroll
    for (int i = 0; i < kWidth; i++) {
      dot += gc[i] * y[i];
      scaled[i] = w * gc[i];
    }
    store_floats(dyp + row * C + c, scaled);
  }
  dot = warp_sum(dot);
  if (lane == 0) dweights[p] = dot;
}

constexpr int kRowWarps = 8;  // rows (or pairs) per block of the warp-per-row kernels

// Rows of C elements of T can be read 16 bytes at a time from all these pointers.
template <typename T>
bool wide_rows(int C, std::initializer_list<const void*> pointers) {
  if ((C * sizeof(T)) % sizeof(uint4) != 0) return false;
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % sizeof(uint4) != 0) return false;
  return true;
}

template <typename T>
void launch_weighted_slots(T* out, const T* rows, const float* weights, const int32_t* row_of, int N, int K, int C,
                           cudaStream_t stream) {
  if (N == 0) return;
  const unsigned blocks = blocks_for(N, kRowWarps);
  if (wide_rows<T>(C, {out, rows}))
    add_weighted_slots<kWideWidth<T>, T><<<blocks, kRowWarps * 32, 0, stream>>>(out, rows, weights, row_of, N, K, C);
  else
    add_weighted_slots<1, T><<<blocks, kRowWarps * 32, 0, stream>>>(out, rows, weights, row_of, N, K, C);
  DSK_CUDA_CHECK_LAUNCH();
}

// ---- balancing

// bias[e] += speed * sign(mean(load) - load[e]); the mean in double, as the CPU's.
__global__ void update_bias_kernel(float* bias, const int64_t* load, int E, float speed) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= E) return;
  double mean = 0.0;
  for (int j = 0; j < E; j++) mean += (double)load[j];
  mean /= (double)E;
  const double gap = mean - (double)load[e];
  bias[e] += speed * (float)((gap > 0) - (gap < 0));
}

// counts [E] (shared) = how often each expert was chosen in sequence b (its T*K pairs).
__device__ void count_sequence_experts(int* counts, const int32_t* experts, int b, int T, int E, int K) {
  for (int e = threadIdx.x; e < E; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  const int32_t* chosen = experts + (int64_t)b * T * K;
  for (int i = threadIdx.x; i < T * K; i += blockDim.x) atomicAdd(&counts[chosen[i]], 1);
  __syncthreads();
}

constexpr int kAuxTokensPerBlock = 64;
constexpr int kAuxWarps = 8;

// The gradient of alpha/B * sum_b sum_e f_e * mean_t(s_te / S_t), S_t = sum_j s_tj (layers.cpp,
// sequence_aux_backward): d/ds_tj = c_j / S_t - sum_e c_e s_te / S_t^2 with c_e = alpha f_e / (B T),
// f_e = E/(K T) * count_e; ds/dlogit = s (1 - s). Grid (token blocks, B); one warp per token.
template <typename Elem>
__global__ void __launch_bounds__(kAuxWarps * 32)
    aux_loss_gradient(Elem* dlogits, const float* scores, const int32_t* experts, int B, int T, int E, int K,
                      float alpha) {
  extern __shared__ int counts[];  // [E]
  const int b = blockIdx.y;
  count_sequence_experts(counts, experts, b, T, E, K);
  const float fraction_scale = (float)E / (float)(K * T), loss_scale = alpha / (float)(B * T);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t_end = min((int)(blockIdx.x + 1) * kAuxTokensPerBlock, T);
  for (int t = blockIdx.x * kAuxTokensPerBlock + warp; t < t_end; t += kAuxWarps) {
    const int64_t n = (int64_t)b * T + t;
    const float* s = scores + n * E;
    float sum = 0.0f, weighted = 0.0f;
    for (int e = lane; e < E; e += 32) {
      sum += s[e];
      weighted += ((float)counts[e] * fraction_scale) * loss_scale * s[e];
    }
    sum = warp_sum(sum);
    weighted = warp_sum(weighted);
    for (int e = lane; e < E; e += 32) {
      const float c = ((float)counts[e] * fraction_scale) * loss_scale;
      const float ds = c / sum - weighted / (sum * sum);
      Elem& d = dlogits[n * E + e];
      d = from_float<Elem>(to_float(d) + ds * s[e] * (1.0f - s[e]));
    }
  }
}

constexpr int kAuxValueThreads = 512;

// One block: loss[0] += alpha / (B T) * sum_b sum_t sum_e f_e s_te / S_t (layers.cpp,
// sequence_aux_loss). A thread per token, each thread's partial in double, summed in thread order.
__global__ void __launch_bounds__(kAuxValueThreads)
    aux_loss_value(float* loss, const float* scores, const int32_t* experts, int B, int T, int E, int K,
                   float alpha) {
  extern __shared__ int counts[];  // [E]
  __shared__ double warp_totals[kAuxValueThreads / 32];
  const float fraction_scale = (float)E / (float)(K * T);
  double total = 0.0;
  for (int b = 0; b < B; b++) {
    count_sequence_experts(counts, experts, b, T, E, K);
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
      const float* s = scores + ((int64_t)b * T + t) * E;
      double sum = 0.0, weighted = 0.0;
      for (int e = 0; e < E; e++) {
        sum += s[e];
        weighted += (double)((float)counts[e] * fraction_scale) * s[e];
      }
      total += weighted / sum;
    }
    __syncthreads();  // counts are rewritten for the next sequence
  }
  for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(kFullMask, total, offset);
  if (threadIdx.x % 32 == 0) warp_totals[threadIdx.x / 32] = total;
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) sum += warp_totals[w];
    loss[0] += (float)(alpha * sum / ((double)B * T));
  }
}

}  // namespace

template <typename T>
void moe_route_forward(float* scores, int32_t* experts, float* weights, const T* logits, const float* bias,
                       const RouterConfig& r, int N, cudaStream_t stream) {
  check_router(r);
  if (N == 0) return;
  route_forward_kernel<T><<<blocks_for(N, kRouterWarps), kRouterWarps * 32, 0, stream>>>(scores, experts, weights,
                                                                                          logits, bias, r, N);
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void moe_route_backward(T* dlogits, const float* dweights, const float* scores, const int32_t* experts,
                        const RouterConfig& r, int N, cudaStream_t stream) {
  check_router(r);
  if (N == 0) return;
  route_backward_kernel<T><<<blocks_for(N, 128), 128, 0, stream>>>(dlogits, dweights, scores, experts, r, N);
  DSK_CUDA_CHECK_LAUNCH();
}

size_t moe_permute_scratch_bytes(int pairs, int E) {
  return (size_t)std::max(permute_chunks(pairs), 1) * (size_t)E * sizeof(int32_t);
}

void moe_permute(int32_t* offsets, int32_t* order, int32_t* row_of, int64_t* load, const int32_t* experts, int N,
                 int K, int E, void* scratch, cudaStream_t stream) {
  if (E < 1 || E > kPermuteMaxExperts)
    throw UsageError(str("moe_permute supports 1 to ", kPermuteMaxExperts, " experts, got ", E));
  const int pairs = N * K, chunks = permute_chunks(pairs);
  int32_t* chunk_rows = static_cast<int32_t*>(scratch);
  if (chunks > 0) {
    count_chunk_experts<<<chunks, kPermuteThreads, E * sizeof(int32_t), stream>>>(chunk_rows, experts, pairs, E);
    DSK_CUDA_CHECK_LAUNCH();
  }
  scan_expert_offsets<<<1, kPermuteThreads, 0, stream>>>(offsets, load, chunk_rows, chunks, E);
  DSK_CUDA_CHECK_LAUNCH();
  if (chunks > 0) {
    const size_t smem = (size_t)(1 + kPermuteWarps) * E * sizeof(int32_t);
    place_pairs<<<chunks, kPermuteThreads, smem, stream>>>(order, row_of, experts, chunk_rows, pairs, E);
    DSK_CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void moe_gather(T* xp, const T* x, const int32_t* order, int N, int K, int C, cudaStream_t stream) {
  const int rows = N * K;
  if (rows == 0) return;
  const unsigned blocks = blocks_for(rows, kRowWarps);
  if (wide_rows<T>(C, {x, xp})) {
    const int units = int(C * sizeof(T) / sizeof(uint4));
    gather_rows<uint4><<<blocks, kRowWarps * 32, 0, stream>>>(reinterpret_cast<uint4*>(xp),
                                                               reinterpret_cast<const uint4*>(x), order, K, units, rows);
  } else {
    gather_rows<T><<<blocks, kRowWarps * 32, 0, stream>>>(xp, x, order, K, C, rows);
  }
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void moe_gather_backward(T* dx, const T* dxp, const int32_t* row_of, int N, int K, int C, cudaStream_t stream) {
  launch_weighted_slots(dx, dxp, nullptr, row_of, N, K, C, stream);
}

template <typename T>
void moe_combine_forward(T* out, const T* yp, const float* weights, const int32_t* row_of, int N, int K, int C,
                         cudaStream_t stream) {
  launch_weighted_slots(out, yp, weights, row_of, N, K, C, stream);
}

template <typename T>
void moe_combine_backward(T* dyp, float* dweights, const T* dout, const T* yp, const float* weights,
                          const int32_t* row_of, int N, int K, int C, cudaStream_t stream) {
  const int pairs = N * K;
  if (pairs == 0) return;
  const unsigned blocks = blocks_for(pairs, kRowWarps);
  if (wide_rows<T>(C, {dyp, dout, yp}))
    combine_backward_kernel<kWideWidth<T>, T><<<blocks, kRowWarps * 32, 0, stream>>>(dyp, dweights, dout, yp, weights,
                                                                                    row_of, pairs, K, C);
  else
    combine_backward_kernel<1, T><<<blocks, kRowWarps * 32, 0, stream>>>(dyp, dweights, dout, yp, weights, row_of,
                                                                         pairs, K, C);
  DSK_CUDA_CHECK_LAUNCH();
}

void moe_update_bias(float* bias, const int64_t* load, int E, float speed, cudaStream_t stream) {
  if (E == 0) return;
  update_bias_kernel<<<blocks_for(E, 256), 256, 0, stream>>>(bias, load, E, speed);
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename Elem>
void moe_sequence_aux_loss(float* loss, Elem* dlogits, const float* scores, const int32_t* experts, int B, int T,
                           int E, int K, float alpha, cudaStream_t stream) {
  if (B * T == 0) return;
  const size_t smem = (size_t)E * sizeof(int);
  aux_loss_value<<<1, kAuxValueThreads, smem, stream>>>(loss, scores, experts, B, T, E, K, alpha);
  DSK_CUDA_CHECK_LAUNCH();
  if (dlogits == nullptr) return;
  const dim3 grid(blocks_for(T, kAuxTokensPerBlock), B);
  aux_loss_gradient<Elem><<<grid, kAuxWarps * 32, smem, stream>>>(dlogits, scores, experts, B, T, E, K, alpha);
  DSK_CUDA_CHECK_LAUNCH();
}

#define DSK_INSTANTIATE_MOE(T)                                                                                      \
  template void moe_route_forward<T>(float*, int32_t*, float*, const T*, const float*, const RouterConfig&, int,    \
                                     cudaStream_t);                                                                 \
  template void moe_route_backward<T>(T*, const float*, const float*, const int32_t*, const RouterConfig&, int,     \
                                      cudaStream_t);                                                                \
  template void moe_gather<T>(T*, const T*, const int32_t*, int, int, int, cudaStream_t);                           \
  template void moe_gather_backward<T>(T*, const T*, const int32_t*, int, int, int, cudaStream_t);                  \
  template void moe_combine_forward<T>(T*, const T*, const float*, const int32_t*, int, int, int, cudaStream_t);    \
  template void moe_combine_backward<T>(T*, float*, const T*, const T*, const float*, const int32_t*, int, int, int, \
                                        cudaStream_t);                                                              \
  template void moe_sequence_aux_loss<T>(float*, T*, const float*, const int32_t*, int, int, int, int, float,       \
                                         cudaStream_t);
DSK_INSTANTIATE_MOE(float)
DSK_INSTANTIATE_MOE(bf16)
#undef DSK_INSTANTIATE_MOE

}  // namespace dsk::kernels::cuda
