// The Hopper path of bf16 attention for heads of 64 (dense-124m, the long shapes):
// attention_flash.cuh's forward and its two backward kernels (dK/dV per key tile, dQ per query
// tile, each recomputing the probabilities from the forward's lse, so no atomics and the same bits
// on every run), with their products on wgmma (wgmma.cuh) instead of mma.sync. One warpgroup a
// block owns 64 rows (queries, or keys) and takes 64 columns (keys, or queries) a step:
// - forward: S = Q K^T from shared memory, the online softmax in the accumulators (the same
//   update as the mma.sync kernel), O += P V with P as register fragments and V MN-major;
// - dK/dV: S^T = K Q^T and dP^T = V dO^T from shared memory (both operands K-major), then
//   P^T and dS^T = P^T (dP^T - D) in the accumulators, which become the A fragments of
//   dV += P^T dO and dK += dS^T Q in registers, with dO and Q read MN-major from the same tiles;
// - dQ: S = Q K^T and dP = dO V^T, then dQ += dS K with K MN-major.
// The next step's tiles load (cp.async) while a step computes. Plain causal attention only (no
// packed rows); attention.cu falls back to the mma.sync kernels otherwise and before sm_90a.
#pragma once

#include "cuda/attention_flash_launch.cuh"
#include "cuda/wgmma.cuh"

namespace dsk::kernels::cuda::flash::hopper {

constexpr int kD = 64;             // Dk = Dv
constexpr int kRows = 64;          // keys (dK/dV) or queries (forward, dQ) a block owns: one warpgroup's M
constexpr int kStep = 64;          // queries (dK/dV) or keys (forward, dQ) a step takes: the products' N
constexpr int kThreads = 128;      // one warpgroup
constexpr int kTileBytes = kRows * kD * int(sizeof(bf16));
// Two fixed tiles, two stages of two tiles, two stages of two float vectors, and the slack that
// aligns the tiles to the swizzle's 1024 bytes.
constexpr int kSmemBytes = 1024 + 6 * kTileBytes + 2 * 2 * kStep * int(sizeof(float));

__device__ __forceinline__ uint8_t* aligned_tiles(uint8_t* raw) {
  return raw + ((1024u - (shared_address(raw) & 1023u)) & 1023u);
}

// Rows [0, valid_rows) of a [64, 64] block at source (row stride `stride` elements) into a
// swizzled tile, asynchronously; zeros for the rows past valid_rows.
__device__ __forceinline__ void load_tile(uint8_t* tile, const bf16* source, int64_t stride, int valid_rows) {
#pragma unroll
  for (int pass = 0; pass < kRows * 8 / kThreads; pass++) {
    const int chunk = pass * kThreads + int(threadIdx.x), row = chunk / 8, column = chunk % 8 * 8;
    const bool valid = row < valid_rows;
    cp_async_16(tile + wgmma::swizzled_offset(row, column), valid ? source + row * stride + column : source, valid);
  }
}

// Row and column of this thread's accumulator element i (wgmma.cuh's layout).
__device__ __forceinline__ int element_row(int i) {
  return 16 * (int(threadIdx.x) / 32) + int(threadIdx.x) % 32 / 4 + 8 * (i % 4 / 2);
}
__device__ __forceinline__ int element_column(int i) { return 8 * (i / 4) + 2 * (int(threadIdx.x) % 4) + i % 2; }

// d = x y^T over the 64 columns of two K-major tiles.
__device__ __forceinline__ void product_abt(float (&d)[32], const uint8_t* x, const uint8_t* y) {
#pragma unroll
  for (int k = 0; k < kD / 16; k++)
    wgmma::mma_ss(d, wgmma::descriptor(x, wgmma::k_major_step(k)), wgmma::descriptor(y, wgmma::k_major_step(k)),
                  k > 0);
}

// d += a y, a the accumulator a_acc (64 x 64, rounded to bf16) and y a tile read MN-major.
__device__ __forceinline__ void product_pb(float (&d)[32], const float (&a_acc)[32], const uint8_t* y) {
  uint32_t a[kStep / 16][4];
#pragma unroll
  for (int k = 0; k < kStep / 16; k++) wgmma::fragment_from_accumulator(a[k], a_acc, k);
  wgmma::fence();
#pragma unroll
  for (int k = 0; k < kStep / 16; k++) wgmma::mma_rs<true>(d, a[k], wgmma::descriptor(y, wgmma::mn_major_step(k)), true);
}

// Waits for the products issued since the last wait, and keeps their accumulators' reads after it.
template <class... Accumulators>
__device__ __forceinline__ void finish_products(Accumulators&... d) {
  wgmma::commit();
  wgmma::wait<0>();
  (wgmma::pin(d), ...);
}

// The accumulators as attention_mma.cuh's [m16 tiles][8-column blocks][4] (the same layout per warp).
__device__ __forceinline__ const float (&as_warp_tiles(const float (&d)[32]))[1][kD / 8][4] {
  return *reinterpret_cast<const float(*)[1][kD / 8][4]>(&d);
}

// The accumulators as attention_flash.cuh's [8-column blocks][4] of one m16 tile.
__device__ __forceinline__ float (&as_blocks(float (&d)[32]))[8][4] { return *reinterpret_cast<float(*)[8][4]>(&d); }

// dk, dv (layouts of k, v) +=. dsum [B, H, Tq] = rowsum(dout * out). Grid: (B * KVH, key tiles).
// Three blocks an SM (168 registers, 16 bytes spilled) measured 3-4% faster than two (214).
__global__ void __launch_bounds__(kThreads, 3)
    backward_kv_kernel(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
                       const bf16* k, const bf16* v, AttentionShape s) {
  extern __shared__ __align__(16) uint8_t shared[];
  uint8_t* const k_tile = aligned_tiles(shared);
  uint8_t* const v_tile = k_tile + kTileBytes;
  uint8_t* const q_tiles = v_tile + kTileBytes;           // [2 stages]
  uint8_t* const dout_tiles = q_tiles + 2 * kTileBytes;  // [2 stages]
  float* const lse_tiles = reinterpret_cast<float*>(dout_tiles + 2 * kTileBytes);  // [2][kStep]
  float* const dsum_tiles = lse_tiles + 2 * kStep;                                  // [2][kStep]

  const int b = int(blockIdx.x) / s.KVH, kvh = int(blockIdx.x) % s.KVH, group = s.H / s.KVH;
  const int n0 = int(blockIdx.y) * kRows, offset = s.Tk - s.Tq;
  const int first_tile = max(0, n0 - offset) / kStep;  // query m sees key n when m >= n - offset
  const int tiles_per_head = (s.Tq + kStep - 1) / kStep - first_tile;
  const int steps = group * max(tiles_per_head, 0);
  const int64_t dout_stride = int64_t(s.H) * s.Dv;
  auto step_head = [&](int step) { return kvh * group + step / tiles_per_head; };
  auto step_m0 = [&](int step) { return (first_tile + step % tiles_per_head) * kStep; };
  auto load_queries = [&](int step) {
    const int h = step_head(step), m0 = step_m0(step), stage = step % 2;
    const int64_t row = int64_t(b) * s.Tq + m0, vector = (int64_t(b) * s.H + h) * s.Tq + m0;
    load_tile(q_tiles + stage * kTileBytes, q + row * s.q_stride + int64_t(h) * s.Dk, s.q_stride, s.Tq - m0);
    load_tile(dout_tiles + stage * kTileBytes, dout + row * dout_stride + int64_t(h) * s.Dv, dout_stride, s.Tq - m0);
    load_floats_async<kThreads>(lse_tiles + stage * kStep, lse + vector, kStep, s.Tq - m0);
    load_floats_async<kThreads>(dsum_tiles + stage * kStep, dsum + vector, kStep, s.Tq - m0);
  };
  load_tile(k_tile, k + (int64_t(b) * s.Tk + n0) * s.k_stride + int64_t(kvh) * s.Dk, s.k_stride, s.Tk - n0);
  load_tile(v_tile, v + (int64_t(b) * s.Tk + n0) * s.v_stride + int64_t(kvh) * s.Dv, s.v_stride, s.Tk - n0);
  if (steps > 0) load_queries(0);
  cp_async_commit();

  float dk_acc[32] = {}, dv_acc[32] = {};
  const float scale_log2 = s.scale * kLog2e;
  for (int step = 0; step < steps; step++) {
    cp_async_wait_all();
    wgmma::fence_shared_for_async();
    __syncthreads();  // the step's tiles are in; the other stage is free (last step's products waited for)
    if (step + 1 < steps) {
      load_queries(step + 1);
      cp_async_commit();
    }
    const int m0 = step_m0(step), stage = step % 2;
    const uint8_t* q_stage = q_tiles + stage * kTileBytes;
    const uint8_t* dout_stage = dout_tiles + stage * kTileBytes;
    const float* lse_stage = lse_tiles + stage * kStep;
    const float* dsum_stage = dsum_tiles + stage * kStep;

    float p[32], ds[32];  // S^T, then P^T; dP^T, then dS^T: [keys][queries]
    wgmma::fence();
    product_abt(p, k_tile, q_stage);
    product_abt(ds, v_tile, dout_stage);
    finish_products(p, ds);
    const bool edge = n0 + kRows - 1 > offset + m0 || m0 + kStep > s.Tq;
#pragma unroll
    for (int i = 0; i < 32; i++) {
      const int column = element_column(i), m = m0 + column;
      const bool hidden = edge && (m >= s.Tq || n0 + element_row(i) > offset + m);
      p[i] = hidden ? 0.0f : exp2f(p[i] * scale_log2 - lse_stage[column] * kLog2e);
      ds[i] = p[i] * (ds[i] - dsum_stage[column]);
    }
    product_pb(dv_acc, p, dout_stage);  // dV += P^T dO
    product_pb(dk_acc, ds, q_stage);    // dK += dS^T Q (x scale below)
    finish_products(dv_acc, dk_acc);
  }

  const int warp_n0 = n0 + 16 * (int(threadIdx.x) / 32);
  add_accumulator_rows<1, kD>(dk + (int64_t(b) * s.Tk + warp_n0) * s.k_stride + int64_t(kvh) * s.Dk, s.k_stride,
                              s.Tk - warp_n0, s.Dk, as_warp_tiles(dk_acc), s.scale);
  add_accumulator_rows<1, kD>(dv + (int64_t(b) * s.Tk + warp_n0) * s.v_stride + int64_t(kvh) * s.Dv, s.v_stride,
                              s.Tk - warp_n0, s.Dv, as_warp_tiles(dv_acc), 1.0f);
}

// A block of the query-tiled kernels (forward, dQ). Grid: (B * H, query tiles), the last query
// tiles (most keys to visit) first; the block visits the key tiles below key_tiles.
struct QueryBlock {
  int b, h, kvh, m0, offset, key_tiles;
  __device__ explicit QueryBlock(const AttentionShape& s) {
    b = int(blockIdx.x) / s.H;
    h = int(blockIdx.x) % s.H;
    kvh = h / (s.H / s.KVH);
    m0 = int(gridDim.y - 1 - blockIdx.y) * kRows;
    offset = s.Tk - s.Tq;
    key_tiles = (min(s.Tk, offset + m0 + kRows) + kStep - 1) / kStep;  // up to the last key a query sees
  }
  // Some key of tile n0.. follows some query of the block: the causal mask applies.
  __device__ bool on_diagonal(int n0) const { return n0 + kStep - 1 > offset + m0; }
  __device__ bool hidden(int n0, int i) const { return n0 + element_column(i) > offset + m0 + element_row(i); }
  // Key tile `tile` of K and V into stage tile % 2 of k_tiles and v_tiles, asynchronously.
  __device__ void load_keys(uint8_t* k_tiles, uint8_t* v_tiles, const bf16* k, const bf16* v, const AttentionShape& s,
                            int tile) const {
    const int n0 = tile * kStep, stage = tile % 2;
    const int64_t row = int64_t(b) * s.Tk + n0;
    load_tile(k_tiles + stage * kTileBytes, k + row * s.k_stride + int64_t(kvh) * s.Dk, s.k_stride, s.Tk - n0);
    load_tile(v_tiles + stage * kTileBytes, v + row * s.v_stride + int64_t(kvh) * s.Dv, s.v_stride, s.Tk - n0);
  }
};

// out [B, Tq, H, Dv] (=), lse [B, H, Tq].
__global__ void __launch_bounds__(kThreads)
    forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, AttentionShape s) {
  extern __shared__ __align__(16) uint8_t shared[];
  uint8_t* const q_tile = aligned_tiles(shared);
  uint8_t* const k_tiles = q_tile + kTileBytes;       // [2 stages]
  uint8_t* const v_tiles = k_tiles + 2 * kTileBytes;  // [2 stages]
  const QueryBlock block(s);
  load_tile(q_tile, q + (int64_t(block.b) * s.Tq + block.m0) * s.q_stride + int64_t(block.h) * s.Dk, s.q_stride,
            s.Tq - block.m0);
  if (block.key_tiles > 0) block.load_keys(k_tiles, v_tiles, k, v, s, 0);
  cp_async_commit();

  float o[32] = {};
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {};
  const float scale_log2 = s.scale * kLog2e;
  for (int tile = 0; tile < block.key_tiles; tile++) {
    cp_async_wait_all();
    wgmma::fence_shared_for_async();
    __syncthreads();  // the tile is in; the other stage is free (last tile's products waited for)
    if (tile + 1 < block.key_tiles) {
      block.load_keys(k_tiles, v_tiles, k, v, s, tile + 1);
      cp_async_commit();
    }
    const int n0 = tile * kStep;
    float scores[32];
    wgmma::fence();
    product_abt(scores, q_tile, k_tiles + (tile % 2) * kTileBytes);
    finish_products(scores);
    const bool diagonal = block.on_diagonal(n0);
#pragma unroll
    for (int i = 0; i < 32; i++) scores[i] = diagonal && block.hidden(n0, i) ? -INFINITY : scores[i] * scale_log2;
    online_softmax_update<kStep, kD>(as_blocks(scores), as_blocks(o), row_max, row_sum);
    product_pb(o, scores, v_tiles + (tile % 2) * kTileBytes);  // O += P V
    finish_products(o);
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    float sum = row_sum[half];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int m = block.m0 + element_row(2 * half);
    if (m >= s.Tq) continue;
    const float inverse = 1.0f / sum;  // > 0: every query sees its own key
    bf16* out_row = out + ((int64_t(block.b) * s.Tq + m) * s.H + block.h) * s.Dv;
#pragma unroll
    for (int j = 0; j < kD / 8; j++)
      *reinterpret_cast<__nv_bfloat162*>(out_row + element_column(4 * j)) =
          __floats2bfloat162_rn(o[4 * j + 2 * half] * inverse, o[4 * j + 2 * half + 1] * inverse);
    if (threadIdx.x % 4 == 0) lse[(int64_t(block.b) * s.H + block.h) * s.Tq + m] = (row_max[half] + log2f(sum)) * kLn2;
  }
}

// dq (layout of q) +=.
__global__ void __launch_bounds__(kThreads)
    backward_q_kernel(bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
                      const bf16* v, AttentionShape s) {
  extern __shared__ __align__(16) uint8_t shared[];
  uint8_t* const q_tile = aligned_tiles(shared);
  uint8_t* const dout_tile = q_tile + kTileBytes;
  uint8_t* const k_tiles = dout_tile + kTileBytes;    // [2 stages]
  uint8_t* const v_tiles = k_tiles + 2 * kTileBytes;  // [2 stages]
  const QueryBlock block(s);
  const int b = block.b, h = block.h, m0 = block.m0;
  const int64_t row = int64_t(b) * s.Tq + m0, dout_stride = int64_t(s.H) * s.Dv;
  load_tile(q_tile, q + row * s.q_stride + int64_t(h) * s.Dk, s.q_stride, s.Tq - m0);
  load_tile(dout_tile, dout + row * dout_stride + int64_t(h) * s.Dv, dout_stride, s.Tq - m0);
  if (block.key_tiles > 0) block.load_keys(k_tiles, v_tiles, k, v, s, 0);
  cp_async_commit();

  // This thread's two query rows: their lse (base 2) and D = rowsum(dout * out).
  float row_lse[2], row_dsum[2];
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int m = m0 + element_row(2 * half);
    const int64_t index = (int64_t(b) * s.H + h) * s.Tq + m;
    row_lse[half] = m < s.Tq ? lse[index] * kLog2e : 0.0f;
    row_dsum[half] = m < s.Tq ? dsum[index] : 0.0f;
  }

  float dq_acc[32] = {};
  const float scale_log2 = s.scale * kLog2e;
  for (int tile = 0; tile < block.key_tiles; tile++) {
    cp_async_wait_all();
    wgmma::fence_shared_for_async();
    __syncthreads();
    if (tile + 1 < block.key_tiles) {
      block.load_keys(k_tiles, v_tiles, k, v, s, tile + 1);
      cp_async_commit();
    }
    const int n0 = tile * kStep;
    const uint8_t* k_stage = k_tiles + (tile % 2) * kTileBytes;
    const uint8_t* v_stage = v_tiles + (tile % 2) * kTileBytes;

    float ds[32], dp[32];  // S, then dS = P (dP - D); dP: [queries][keys]
    wgmma::fence();
    product_abt(ds, q_tile, k_stage);
    product_abt(dp, dout_tile, v_stage);
    finish_products(ds, dp);
    const bool diagonal = block.on_diagonal(n0);
#pragma unroll
    for (int i = 0; i < 32; i++) {
      const int half = i % 4 / 2;
      const bool hidden = diagonal && block.hidden(n0, i);
      const float probability = hidden ? 0.0f : exp2f(ds[i] * scale_log2 - row_lse[half]);
      ds[i] = probability * (dp[i] - row_dsum[half]);
    }
    product_pb(dq_acc, ds, k_stage);  // dQ += dS K (x scale below)
    finish_products(dq_acc);
  }

  const int warp_m0 = m0 + 16 * (int(threadIdx.x) / 32);
  add_accumulator_rows<1, kD>(dq + (int64_t(b) * s.Tq + warp_m0) * s.q_stride + int64_t(h) * s.Dk, s.q_stride,
                              s.Tq - warp_m0, s.Dk, as_warp_tiles(dq_acc), s.scale);
}

// out, lse for Dk = Dv = 64 without packed rows, on an sm_90a build and device.
inline void launch_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s,
                           cudaStream_t stream) {
  allow_shared_memory(forward_kernel, kSmemBytes);
  forward_kernel<<<grid(s.B * s.H, tiles(s.Tq, kRows)), kThreads, kSmemBytes, stream>>>(out, lse, q, k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

// dq, dk, dv += for Dk = Dv = 64 without packed rows, on an sm_90a build and device.
inline void launch_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum,
                            const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s,
                            cudaStream_t stream) {
  allow_shared_memory(backward_kv_kernel, kSmemBytes);
  backward_kv_kernel<<<grid(s.B * s.KVH, tiles(s.Tk, kRows)), kThreads, kSmemBytes, stream>>>(dk, dv, dout, lse,
                                                                                             dsum, q, k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
  allow_shared_memory(backward_q_kernel, kSmemBytes);
  backward_q_kernel<<<grid(s.B * s.H, tiles(s.Tq, kRows)), kThreads, kSmemBytes, stream>>>(dq, dout, lse, dsum, q, k,
                                                                                          v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

}  // namespace dsk::kernels::cuda::flash::hopper
